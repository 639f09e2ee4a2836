package plugin_test

// Stampedes, signals, kubectl's re-runs, faults and clock extremes, all
// through the built plugin binary. The stampedes count requests at a real
// rotating provider (npm oidc-provider, which revokes the grant when a
// rotated refresh token is spent twice), so "one refresh" is the
// provider's figure, not ours.
//
// The stampede tests start hundreds of processes; they run when
// DEVICE_LOGIN_STRESS=1 (make stress). Everything else here runs in every
// `go test`. Tests that need mounts run as root only and say so when they
// skip.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// waitingMessage is what a process says while another holds the lock.
const waitingMessage = "another kubectl-device-login is signing in"

// nonInteractive is KUBERNETES_EXEC_INFO as kubectl sets it when no one
// is at a terminal.
const nonInteractive = `KUBERNETES_EXEC_INFO={"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`

// stress skips heavy tests unless DEVICE_LOGIN_STRESS=1.
func stress(t *testing.T) {
	t.Helper()
	if os.Getenv("DEVICE_LOGIN_STRESS") != "1" {
		t.Skip("stampede test: set DEVICE_LOGIN_STRESS=1 (make stress) to run it")
	}
}

// syncBuffer is a bytes.Buffer that a running process writes to while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running process whose output the test can watch.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	start          time.Time
	done           chan struct{}
	res            result // set before done is closed
}

// spawn starts bin with args; stdin is /dev/null unless given. The
// process is killed when ctx ends. Call it from the test's goroutine.
func spawn(t testing.TB, ctx context.Context, bin string, args, env []string, stdin *os.File) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Env = append(baseEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if stdin != nil {
		p.cmd.Stdin = stdin
	}
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.res = result{stdout: p.stdout.String(), stderr: p.stderr.String(), took: time.Since(p.start)}
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			p.res.exit = ee.ExitCode() // -1 when killed by a signal
		case err != nil:
			p.res.exit = -2
			p.res.stderr += "\n[test: " + err.Error() + "]"
		}
		close(p.done)
	}()
	return p
}

// startPlugin starts the plugin binary with extra environment entries.
func startPlugin(t testing.TB, ctx context.Context, args []string, env ...string) *proc {
	t.Helper()
	return spawn(t, ctx, pluginBin, args, env, nil)
}

func (p *proc) wait() result {
	<-p.done
	return p.res
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for %s: %w", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// leakGuard is the suite-wide no-secret check: every scenario registers
// what it captured from stderr (and error texts) and every secret that
// existed during it (access, refresh and ID tokens from the cache and from
// stdout, the client secret); at the end of the test no capture may hold
// any secret.
type leakGuard struct {
	mu       sync.Mutex
	captures map[string]string // name -> text
	secrets  map[string]string // value -> what it is
}

func newLeakGuard(t *testing.T) *leakGuard {
	g := &leakGuard{captures: map[string]string{}, secrets: map[string]string{}}
	t.Cleanup(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.captures) == 0 {
			t.Errorf("leak guard: nothing was captured")
		}
		for name, text := range g.captures {
			for secret, what := range g.secrets {
				if strings.Contains(text, secret) {
					t.Errorf("leak guard: %s appears in %s:\n%s", what, name, text)
				}
			}
		}
		t.Logf("leak guard: %d captures checked against %d secrets", len(g.captures), len(g.secrets))
	})
	return g
}

func (g *leakGuard) capture(name, text string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.captures[fmt.Sprintf("%s #%d", name, len(g.captures))] = text
}

func (g *leakGuard) secret(what, value string) {
	// Values this short would match ordinary words; no real token is.
	if len(value) < 8 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.secrets[value] = what
}

// result registers a run's stderr and the token it printed.
func (g *leakGuard) result(name string, r result) {
	g.capture(name+" stderr", r.stderr)
	var c credential
	if json.Unmarshal([]byte(r.stdout), &c) == nil {
		g.secret("the printed token", c.Status.Token)
	}
}

func (g *leakGuard) entry(e *cache.Entry) {
	if e == nil {
		return
	}
	g.secret("an access token", e.AccessToken)
	g.secret("a refresh token", e.RefreshToken)
	g.secret("an ID token", e.IDToken)
}

// sessions registers the tokens of every session in a cache directory.
func (g *leakGuard) sessions(dir string) {
	l, _ := (&cache.Sessions{Dir: dir}).List()
	for _, x := range l {
		for _, c := range x.Copies {
			g.entry(c.Entry)
		}
	}
}

// rewrite changes the only cached session of s.
func rewrite(t testing.TB, s *session, f func(e *cache.Entry)) *cache.Entry {
	t.Helper()
	e := s.entry(t)
	f(e)
	if err := (cache.Store{Dir: s.cacheDir}).Save(e); err != nil {
		t.Fatal(err)
	}
	return e
}

// expire makes the cached access token look expired a minute ago, as if
// an hour had passed; the provider still honours the refresh token.
func expire(e *cache.Entry) {
	e.IssuedAt = time.Now().Add(-61 * time.Minute)
	e.Expiry = time.Now().Add(-time.Minute)
}

// login signs s in with a device login; onCode approves it, or is nil
// when the provider approves by itself.
func login(t *testing.T, ctx context.Context, s *session, g *leakGuard, onCode func(string)) credential {
	t.Helper()
	r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), onCode: onCode})
	g.result("login", r)
	c := r.credential(t)
	g.sessions(s.cacheDir)
	return c
}

// holdLock takes the session's lock in the test process, as another
// plugin process would.
func holdLock(t testing.TB, dir, id string) (release func()) {
	t.Helper()
	lock, err := cache.Store{Dir: dir}.Lock(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(lock.Release) }
	t.Cleanup(release)
	return release
}

// lockHeld reports whether someone holds the session's lock.
func lockHeld(t testing.TB, dir, id string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	lock, err := cache.Store{Dir: dir}.Lock(ctx, id, nil)
	if err == nil {
		lock.Release()
		return false
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	return true
}

// keyID is the session ID the plugin uses for these flags with default
// scopes and token.
func keyID(issuer, clientID string) string {
	return cache.Key{Issuer: issuer, ClientID: clientID, Scopes: plugin.DefaultScopes, Token: plugin.TokenAccess}.ID()
}

func TestHotStampedeSpendsTheRefreshTokenOnce(t *testing.T) {
	stress(t)
	const n = 50
	p := providertest.StartNode(t, providertest.Options{})
	s := newSession(t, p)
	g := newLeakGuard(t)
	ctx := testContext(t, 5*time.Minute)
	login(t, ctx, s, g, s.approve(t))

	// Round 1: 50 processes started at once, free to race. Round 2: the
	// same, but the lock is held until all 50 say they wait, so every one
	// of them has read the expired entry before the refresh happens.
	for _, gated := range []bool{false, true} {
		name := map[bool]string{false: "free race", true: "all waiting"}[gated]
		old := rewrite(t, s, expire)
		g.entry(old)
		before := s.counts(t)
		var release func()
		if gated {
			release = holdLock(t, s.cacheDir, old.Key.ID())
		}
		procs := make([]*proc, n)
		for i := range procs {
			procs[i] = startPlugin(t, ctx, s.args("get-token", "--device-login=never"), nonInteractive)
		}
		if gated {
			err := waitUntil(ctx, "every process to wait for the lock", func() bool {
				for _, p := range procs {
					if !strings.Contains(p.stderr.String(), waitingMessage) {
						return false
					}
				}
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			release()
		}
		results := make([]result, n)
		for i, p := range procs {
			results[i] = p.wait()
			g.result(fmt.Sprintf("%s process %d", name, i), results[i])
		}
		after := s.counts(t)
		tokens := map[string]int{}
		waited, failed := 0, 0
		for i, r := range results {
			if strings.Contains(r.stderr, waitingMessage) {
				waited++
			}
			if r.exit != 0 {
				if failed++; failed <= 3 {
					t.Errorf("%s: process %d: exit %d\n%s", name, i, r.exit, r.stderr)
				}
				continue
			}
			tokens[r.credential(t).Status.Token]++
		}
		t.Logf("%s: %d processes, %d waited for the lock, %d failed; %d refresh requests at the provider; %d distinct tokens printed",
			name, n, waited, failed, after.RefreshTokenGrant-before.RefreshTokenGrant, len(tokens))
		if failed > 0 {
			t.FailNow()
		}
		e := s.entry(t)
		g.entry(e)
		if got := after.RefreshTokenGrant - before.RefreshTokenGrant; got != 1 {
			t.Errorf("%s: the provider saw %d refresh requests, want 1", name, got)
		}
		if after.DeviceAuthorization != before.DeviceAuthorization {
			t.Errorf("%s: a device login started", name)
		}
		if len(tokens) != 1 || tokens[e.AccessToken] != n {
			t.Errorf("%s: printed tokens %v, want the cached new token %d times", name, len(tokens), n)
		}
		if e.AccessToken == old.AccessToken || e.RefreshToken == old.RefreshToken {
			t.Errorf("%s: the cache was not updated with the rotated tokens", name)
		}
		if sub, status := userinfo(t, p, e.AccessToken); status != http.StatusOK || sub != p.Subject() {
			t.Errorf("%s: the provider does not honour the printed token: userinfo %d %q", name, status, sub)
		}
	}

	// The session survived: had any process spent a refresh token twice,
	// oidc-provider would have revoked the grant and this would fail.
	before := s.counts(t)
	old := rewrite(t, s, expire)
	r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=never"), env: []string{nonInteractive}})
	g.result("after the stampedes", r)
	c := r.credential(t)
	g.sessions(s.cacheDir)
	if c.Status.Token == old.AccessToken || s.counts(t).RefreshTokenGrant != before.RefreshTokenGrant+1 {
		t.Errorf("the refresh after the stampedes did not happen: %s", r.stderr)
	}
	if _, status := userinfo(t, p, c.Status.Token); status != http.StatusOK {
		t.Errorf("the session did not survive: userinfo %d", status)
	}
}

func TestColdStampedeStartsOneDeviceLogin(t *testing.T) {
	stress(t)
	const n = 20
	p := providertest.StartNode(t, providertest.Options{})
	s := newSession(t, p)
	g := newLeakGuard(t)
	ctx := testContext(t, 3*time.Minute)

	procs := make([]*proc, n)
	for i := range procs {
		procs[i] = startPlugin(t, ctx, s.args("get-token", "--device-login=always"))
	}
	// Wait until every process either shows a code or waits; approve only
	// then, so that the waiting is proved, not a race won early.
	var codes []string
	var showing int
	err := waitUntil(ctx, "one code and 19 waiting processes", func() bool {
		codes, showing = nil, 0
		waiting := 0
		for _, p := range procs {
			out := p.stderr.String()
			if m := userCodeRE.FindStringSubmatch(out); m != nil {
				codes = append(codes, m[1])
				showing++
			} else if strings.Contains(out, waitingMessage) {
				waiting++
			}
		}
		return showing+waiting == n
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range codes {
		s.approve(t)(code)
	}
	tokens := map[string]int{}
	for i, p := range procs {
		r := p.wait()
		g.result(fmt.Sprintf("process %d", i), r)
		tokens[r.credential(t).Status.Token]++
		shown := userCodeRE.MatchString(r.stderr)
		if !shown && !strings.Contains(r.stderr, waitingMessage) {
			t.Errorf("process %d neither signed in nor said it waited:\n%s", i, r.stderr)
		}
	}
	g.sessions(s.cacheDir)
	c := s.counts(t)
	t.Logf("cold stampede: %d processes, %d showed a code, %d waited; provider: %d device authorizations, %d discovery, %d device code polls",
		n, showing, n-showing, c.DeviceAuthorization, c.Discovery, c.DeviceCodeGrant)
	if showing != 1 || c.DeviceAuthorization != 1 {
		t.Errorf("%d processes showed a code and the provider saw %d device authorizations; want 1 and 1", showing, c.DeviceAuthorization)
	}
	e := s.entry(t)
	if len(tokens) != 1 || tokens[e.AccessToken] != n {
		t.Errorf("printed %d distinct tokens; want the one login's token %d times", len(tokens), n)
	}
}

func TestCacheHitsDoNotWaitForTheLock(t *testing.T) {
	stress(t)
	const n = 100
	p := providertest.StartZitadel(t, providertest.Options{AutoApprove: true})
	s := newSession(t, p)
	g := newLeakGuard(t)
	ctx := testContext(t, 3*time.Minute)
	login(t, ctx, s, g, nil)
	e := s.entry(t)

	release := holdLock(t, s.cacheDir, e.Key.ID())
	// A cache hit that took the lock would wait until this context ends
	// and be killed, failing the test.
	hitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	procs := make([]*proc, n)
	for i := range procs {
		procs[i] = startPlugin(t, hitCtx, s.args("get-token", "--device-login=never"), nonInteractive)
	}
	for i, p := range procs {
		r := p.wait()
		g.result(fmt.Sprintf("hit %d", i), r)
		if got := r.credential(t).Status.Token; got != e.AccessToken {
			t.Errorf("hit %d printed another token", i)
		}
		if r.stderr != "" {
			t.Errorf("hit %d wrote to stderr: %q", i, r.stderr)
		}
	}
	if !lockHeld(t, s.cacheDir, e.Key.ID()) {
		t.Fatal("the lock was not held while the hits ran")
	}
	release()
	t.Logf("%d parallel cache hits finished while another holder kept the lock", n)
	if c := s.counts(t); c.RefreshTokenGrant != 0 || c.DeviceAuthorization != 1 {
		t.Errorf("provider counts %+v: a hit went to the provider", c)
	}
}

func TestSignalsEndTheWaitForTheLock(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			g := newLeakGuard(t)
			// Nothing listens here: the process never gets past the lock,
			// so no provider is involved.
			issuer := "http://127.0.0.1:9"
			dir := filepath.Join(t.TempDir(), "cache")
			id := keyID(issuer, "kubectl")
			release := holdLock(t, dir, id)
			ctx := testContext(t, time.Minute)
			pr := startPlugin(t, ctx, []string{"get-token", "--issuer-url=" + issuer, "--client-id=kubectl", "--cache-dir=" + dir, "--device-login=always"})
			if err := waitUntil(ctx, "the process to wait for the lock", func() bool {
				return strings.Contains(pr.stderr.String(), waitingMessage) || pr.exited()
			}); err != nil {
				t.Fatal(err)
			}
			if err := pr.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			r := pr.wait()
			g.result("signalled", r)
			// It ended by itself (the context would kill it with exit -1)
			// while the lock was still held: the signal ended the wait.
			if !lockHeld(t, dir, id) {
				t.Errorf("the lock was released before the process ended")
			}
			release()
			if r.exit != 130 || r.stdout != "" || !strings.Contains(r.stderr, "interrupted") {
				t.Errorf("after %s: exit %d, stdout %q, stderr:\n%s", sig, r.exit, r.stdout, r.stderr)
			}
			if f := (cache.Store{Dir: dir}).LastFailure(id); f != nil {
				t.Errorf("an interruption was remembered as a failure: %+v", f)
			}
		})
	}
}

func TestStaleLockOfAKilledLoginDoesNotBlock(t *testing.T) {
	p := providertest.StartZitadel(t, providertest.Options{})
	s := newSession(t, p)
	g := newLeakGuard(t)
	ctx := testContext(t, 2*time.Minute)

	victim := startPlugin(t, ctx, s.args("get-token", "--device-login=always"))
	if err := waitUntil(ctx, "the first login's code", func() bool {
		return userCodeRE.MatchString(victim.stderr.String()) || victim.exited()
	}); err != nil {
		t.Fatal(err)
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	r := victim.wait()
	g.result("killed", r)
	if r.exit != -1 {
		t.Fatalf("the first login was not killed mid-way: exit %d\n%s", r.exit, r.stderr)
	}
	locks, _ := filepath.Glob(filepath.Join(s.cacheDir, "*.lock"))
	if len(locks) != 1 {
		t.Fatalf("want the killed process's lock file left behind, found %v", locks)
	}

	r = runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), onCode: s.approve(t)})
	g.result("next run", r)
	r.credential(t)
	g.sessions(s.cacheDir)
	if strings.Contains(r.stderr, waitingMessage) || strings.Contains(r.stderr, "not retried") {
		t.Errorf("the next run waited for or repeated the killed one:\n%s", r.stderr)
	}
	if c := s.counts(t); c.DeviceAuthorization != 2 {
		t.Errorf("provider counts %+v, want a second device authorization", c)
	}
}

// tcpSink is a stand-in for a provider that cannot be reached or does not
// answer, which no real provider can be made to do: it accepts connections
// and either holds them silently or resets them, counting each.
type tcpSink struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newTCPSink(t testing.TB, reset bool) *tcpSink {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpSink{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			if reset {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *tcpSink) URL() string { return "http://" + s.l.Addr().String() }

func (s *tcpSink) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// closedPort is a loopback address where nothing listens.
func closedPort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// kubeconfigFor writes a kubeconfig whose user runs the plugin with args,
// interactiveMode IfAvailable: kubectl tells the plugin a person is there
// only when kubectl's stdin is a terminal.
func kubeconfigFor(t testing.TB, api *providertest.APIServer, args []string) string {
	t.Helper()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := providertest.WriteKubeconfig(kc, providertest.Kubeconfig{
		Server: api.URL(), CAPEM: api.CAPEM(), Command: pluginBin, Args: args,
		InteractiveMode: "IfAvailable",
	}); err != nil {
		t.Fatal(err)
	}
	return kc
}

// pluginRuns counts the plugin's runs in kubectl's stderr: each run ends
// with exactly one "device-login: " error line.
func pluginRuns(stderr string) int {
	return len(regexp.MustCompile(`(?m)^device-login: `).FindAllString(stderr, -1))
}

func TestOneKubectlCommandStartsAtMostOneDeviceLogin(t *testing.T) {
	bin := kubectlPath(t)

	t.Run("denied, then a terminal clears it", func(t *testing.T) {
		// A short code lifetime bounds the test if a second login started.
		p := providertest.StartNode(t, providertest.Options{DeviceCodeTTL: 20 * time.Second})
		api := providertest.NewAPIServer(p.Issuer(), nil)
		defer api.Close()
		s := newSession(t, p)
		g := newLeakGuard(t)
		kc := kubeconfigFor(t, api, s.args("get-token", "--device-login=always"))
		ctx := testContext(t, 2*time.Minute)

		// `get pods` runs a failing plugin six times (discovery retries).
		r := kubectl(t, ctx, bin, kc, s.deny(t), "get", "pods")
		g.result("kubectl denied", r)
		runs := pluginRuns(r.stderr)
		repeated := strings.Count(r.stderr, "is not retried for")
		c := s.counts(t)
		t.Logf("denied: kubectl ran the plugin %d times; %d repeated the remembered failure; provider: %d device authorizations", runs, repeated, c.DeviceAuthorization)
		if r.exit == 0 || !strings.Contains(r.stderr, "the sign-in was denied at the provider") {
			t.Fatalf("kubectl: exit %d\n%s", r.exit, r.stderr)
		}
		if runs < 2 {
			t.Fatalf("kubectl ran the plugin %d time(s); the re-runs this test is about did not happen:\n%s", runs, r.stderr)
		}
		if c.DeviceAuthorization != 1 || repeated != runs-1 {
			t.Errorf("provider saw %d device authorizations (want 1); %d of %d re-runs repeated the failure:\n%s", c.DeviceAuthorization, repeated, runs-1, r.stderr)
		}

		// A later kubectl in a terminal (stdin is a pty, so kubectl sets
		// spec.interactive) is a person trying again: a new login.
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		defer tty.Close()
		pr := spawn(t, ctx, bin, []string{"--kubeconfig=" + kc, "get", "--raw", "/api"}, nil, tty)
		if err := waitUntil(ctx, "a new code", func() bool { return userCodeRE.MatchString(pr.stderr.String()) || pr.exited() }); err != nil {
			t.Fatal(err)
		}
		if m := userCodeRE.FindStringSubmatch(pr.stderr.String()); m != nil {
			s.approve(t)(m[1])
		}
		r = pr.wait()
		g.result("kubectl in a terminal", r)
		g.sessions(s.cacheDir)
		if r.exit != 0 || !strings.Contains(r.stdout, `"APIVersions"`) {
			t.Fatalf("kubectl in a terminal after the failure: exit %d\n%s", r.exit, r.stderr)
		}
		if c := s.counts(t); c.DeviceAuthorization != 2 {
			t.Errorf("provider counts %+v, want a second device authorization", c)
		}
	})

	// Unreachable providers: kubectl runs the failing plugin twice for
	// `get --raw /api` and six times for `get pods` (discovery retries).
	for _, tc := range []struct {
		name    string
		reset   bool // connections reset (counted) rather than refused
		cmd     []string
		breaker bool
	}{
		{"refused, get --raw", false, []string{"get", "--raw", "/api"}, true},
		{"refused, get pods", false, []string{"get", "pods"}, true},
		{"reset, get --raw", true, []string{"get", "--raw", "/api"}, true},
		{"reset, get pods", true, []string{"get", "pods"}, true},
		// The control: without the breaker every run tries again, so
		// the counts above are the breaker's doing.
		{"reset, get pods, no breaker", true, []string{"get", "pods"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issuer, attempts := closedPort(t), func() int { return -1 }
			if tc.reset {
				sink := newTCPSink(t, true)
				issuer, attempts = sink.URL(), sink.accepted
			}
			api := providertest.NewAPIServer(issuer, nil)
			defer api.Close()
			dir := filepath.Join(t.TempDir(), "cache")
			g := newLeakGuard(t)
			args := []string{"get-token", "--issuer-url=" + issuer, "--client-id=kubectl", "--cache-dir=" + dir, "--device-login=always"}
			if !tc.breaker {
				args = append(args, "--remember-failure=0")
			}
			kc := kubeconfigFor(t, api, args)
			r := kubectl(t, testContext(t, time.Minute), bin, kc, nil, tc.cmd...)
			g.result("kubectl", r)
			runs := pluginRuns(r.stderr)
			repeated := strings.Count(r.stderr, "is not retried for")
			tried := strings.Count(r.stderr, "cannot reach the provider") - repeated
			msg := fmt.Sprintf("kubectl ran the plugin %d times; %d tried the provider, %d repeated the remembered failure", runs, tried, repeated)
			if tc.reset {
				msg += fmt.Sprintf("; %d connections reached the provider's address", attempts())
			}
			t.Log(msg)
			if r.exit == 0 || runs < 2 {
				t.Fatalf("kubectl: exit %d, %d plugin runs\n%s", r.exit, runs, r.stderr)
			}
			want := 1
			if !tc.breaker {
				want = runs
			}
			if tried != want || repeated != runs-tried {
				t.Errorf("%s; want %d attempt(s) and the rest repeating the failure:\n%s", msg, want, r.stderr)
			}
			if tc.reset && attempts() != want {
				t.Errorf("%d connections reached the provider's address, want %d", attempts(), want)
			}
		})
	}
}

func TestRefreshFailsWhileTheTokenIsValid(t *testing.T) {
	// The refresh goes to a stand-in token endpoint (--token-endpoint): a
	// real provider cannot be made to hang or vanish on demand.
	p := providertest.StartZitadel(t, providertest.Options{AutoApprove: true})
	for _, tc := range []struct {
		name     string
		endpoint func(t *testing.T) (string, func() int)
		want     string
	}{
		{"timing out", func(t *testing.T) (string, func() int) {
			s := newTCPSink(t, false)
			return s.URL() + "/token", s.accepted
		}, "did not answer in time; check your network and proxy settings, or raise --request-timeout); using the current token"},
		{"down", func(t *testing.T) (string, func() int) { return closedPort(t) + "/token", nil }, "was refused: nothing listens there; check the URL and that the provider is running); using the current token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, p)
			g := newLeakGuard(t)
			ctx := testContext(t, time.Minute)
			login(t, ctx, s, g, nil)
			// Valid for 30 s more, but inside the refresh margin.
			e := rewrite(t, s, func(e *cache.Entry) {
				e.IssuedAt = time.Now().Add(-time.Hour)
				e.Expiry = time.Now().Add(30 * time.Second)
			})
			endpoint, attempts := tc.endpoint(t)
			// --request-timeout=2s: the default 30 s would outlast this
			// context, which kills the process and fails the test.
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			r := runPlugin(t, rctx, invocation{
				args: s.args("get-token", "--device-login=never", "--request-timeout=2s", "--token-endpoint="+endpoint),
				env:  []string{nonInteractive},
			})
			g.result(tc.name, r)
			if got := r.credential(t).Status.Token; got != e.AccessToken {
				t.Errorf("served another token than the valid cached one")
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, r.stderr)
			}
			if attempts != nil && attempts() != 1 {
				t.Errorf("%d connections to the token endpoint, want 1", attempts())
			}
			if after := s.entry(t); after.RefreshToken != e.RefreshToken {
				t.Errorf("the cached session changed")
			}
			t.Logf("%s: token served with a note after %s", tc.name, r.took.Round(100*time.Millisecond))
		})
	}
}

// requireRoot skips tests that need mounts.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (a full or read-only file system); root's read-only checks cannot be faked with chmod")
	}
}

// mountTmpfs mounts a tmpfs owned by root with mode 0700 and returns its
// path; it is unmounted when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); this test needs CAP_SYS_ADMIN", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func remountReadOnly(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
}

// fill writes to dir until the file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

func TestUnwritableCacheStillPrintsTheCredential(t *testing.T) {
	requireRoot(t)
	p := providertest.StartZitadel(t, providertest.Options{AutoApprove: true})
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, mnt string)
		want    string
	}{
		{"disk full", fill, "no space left on device"},
		{"read-only", remountReadOnly, "read-only file system"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := mountTmpfs(t, "256k")
			s := newSession(t, p)
			s.cacheDir = filepath.Join(mnt, "cache")
			s.flags = append(s.flags, "--cache-dir="+s.cacheDir) // the last one wins
			if err := os.Mkdir(s.cacheDir, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, mnt)
			g := newLeakGuard(t)
			tmp := t.TempDir()
			r := runPlugin(t, testContext(t, time.Minute), invocation{
				args: s.args("get-token", "--device-login=always"), env: []string{"TMPDIR=" + tmp}})
			g.result(tc.name, r)
			c := r.credential(t)
			if sub, status := userinfo(t, p, c.Status.Token); status != http.StatusOK || sub != p.Subject() {
				t.Errorf("the printed token is not honoured: %d", status)
			}
			if !strings.Contains(r.stderr, "could not save the session") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks the warning about %q:\n%s", tc.want, r.stderr)
			}
			// Nothing goes to a shared directory instead: not a lock, not
			// a spare copy (another user could have made either first).
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("the plugin wrote to $TMPDIR: %v", left)
			}
		})
	}
}

func TestRefreshInAReadOnlyCacheSpendsTheTokenOnce(t *testing.T) {
	stress(t)
	requireRoot(t)
	const n = 10
	p := providertest.StartNode(t, providertest.Options{})
	mnt := mountTmpfs(t, "1m")
	s := newSession(t, p)
	s.cacheDir = filepath.Join(mnt, "cache")
	s.flags = append(s.flags, "--cache-dir="+s.cacheDir)
	g := newLeakGuard(t)
	ctx := testContext(t, 2*time.Minute)
	login(t, ctx, s, g, s.approve(t))
	old := rewrite(t, s, expire)
	remountReadOnly(t, mnt)

	tmp := t.TempDir()
	procs := make([]*proc, n)
	for i := range procs {
		procs[i] = startPlugin(t, ctx, s.args("get-token", "--device-login=never"), nonInteractive, "TMPDIR="+tmp)
	}
	ok, honoured := 0, 0
	for i, pr := range procs {
		r := pr.wait()
		g.result(fmt.Sprintf("process %d", i), r)
		if r.exit != 0 {
			continue
		}
		ok++
		// A token handed to kubectl must stay good: a second spending
		// of the refresh token would make the provider revoke it.
		if _, status := userinfo(t, p, r.credential(t).Status.Token); status == http.StatusOK {
			honoured++
		}
	}
	c := s.counts(t)
	t.Logf("read-only cache, %d processes: %d printed a credential, %d of those still honoured afterwards; provider: %d refresh requests", n, ok, honoured, c.RefreshTokenGrant)
	if honoured != ok {
		t.Errorf("%d of %d printed credentials were revoked by the provider afterwards", ok-honoured, ok)
	}
	if c.RefreshTokenGrant != 1 {
		t.Errorf("the provider saw %d refresh requests for one refresh token, want 1", c.RefreshTokenGrant)
	}
	if ok != n {
		t.Errorf("%d of %d processes printed a credential", ok, n)
	}
	if e := s.entry(t); e.RefreshToken != old.RefreshToken {
		t.Errorf("the read-only cache changed")
	}
}

func TestClockExtremesInTheCache(t *testing.T) {
	p := providertest.StartZitadel(t, providertest.Options{AutoApprove: true})
	api := providertest.NewAPIServer(p.Issuer(), nil)
	defer api.Close()
	year9999 := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		set     func(e *cache.Entry)
		refresh bool
	}{
		// Expired long ago: one refresh, a new token.
		{"expired in 1970", func(e *cache.Entry) {
			e.IssuedAt = time.Unix(0, 0)
			e.Expiry = time.Unix(3600, 0)
		}, true},
		// The last instant RFC 3339 can write: served as the cache says,
		// with a timestamp kubectl accepts.
		{"expires in 9999", func(e *cache.Entry) { e.Expiry = year9999 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, p)
			g := newLeakGuard(t)
			ctx := testContext(t, time.Minute)
			login(t, ctx, s, g, nil)
			before := s.counts(t)
			e := rewrite(t, s, tc.set)
			r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=never"), env: []string{nonInteractive}})
			g.result(tc.name, r)
			c := r.credential(t)
			g.sessions(s.cacheDir)
			refreshed := s.counts(t).RefreshTokenGrant - before.RefreshTokenGrant
			t.Logf("%s: exit %d, %d refresh requests, expirationTimestamp %q", tc.name, r.exit, refreshed, c.Status.ExpirationTimestamp)
			if tc.refresh != (refreshed == 1) || refreshed > 1 {
				t.Errorf("%d refresh requests, want refresh=%t", refreshed, tc.refresh)
			}
			if !tc.refresh && c.Status.Token != e.AccessToken {
				t.Errorf("the cached token was not served")
			}
			if _, status := userinfo(t, p, c.Status.Token); status != http.StatusOK {
				t.Errorf("the printed token is not honoured: %d", status)
			}
			// The real kubectl takes the credential and its timestamp.
			kc := kubeconfigFor(t, api, s.args("get-token", "--device-login=never"))
			k := kubectl(t, ctx, kubectlPath(t), kc, nil, "get", "--raw", "/api")
			g.result("kubectl", k)
			if k.exit != 0 || !strings.Contains(k.stdout, `"APIVersions"`) {
				t.Errorf("kubectl with this session: exit %d\n%s", k.exit, k.stderr)
			}
		})
	}
}

// confidentialProvider is a scripted provider for a confidential client:
// neither real provider here is set up with one (both offer only a public
// client), so this checks a client secret's path through the binary. It
// answers the device flow at once and refuses every refresh, echoing the
// request back in a non-standard field as a careless server might.
func confidentialProvider(t *testing.T, secret string) *httptest.Server {
	n := 0
	var mu sync.Mutex
	mux := http.NewServeMux()
	// The server is made before it starts, so that handlers read its URL
	// without racing the test.
	srv := httptest.NewUnstartedServer(mux)
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	// The client authenticates with HTTP Basic by default (RFC 6749
	// §2.3.1), in the body with --client-auth=post.
	sent := func(r *http.Request) string {
		if id, pw, ok := r.BasicAuth(); ok && id == "confidential" {
			pw, _ = url.QueryUnescape(pw)
			return pw
		}
		return r.PostForm.Get("client_secret")
	}
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"issuer": srv.URL, "device_authorization_endpoint": srv.URL + "/device", "token_endpoint": srv.URL + "/token"})
	})
	mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if sent(r) != secret {
			reply(w, 401, map[string]any{"error": "invalid_client"})
			return
		}
		reply(w, 200, map[string]any{"device_code": "device-code-0123456789", "user_code": "ABCD-EFGH",
			"verification_uri": srv.URL + "/verify", "expires_in": 60, "interval": 1})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if sent(r) != secret {
			reply(w, 401, map[string]any{"error": "invalid_client", "echo": r.PostForm.Encode()})
			return
		}
		if r.PostForm.Get("grant_type") == "refresh_token" {
			reply(w, 400, map[string]any{"error": "invalid_grant", "error_description": "refresh refused", "echo": r.PostForm.Encode()})
			return
		}
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		reply(w, 200, map[string]any{"access_token": fmt.Sprintf("conf-access-token-%d-abcdefgh", i), "token_type": "Bearer",
			"refresh_token": fmt.Sprintf("conf-refresh-token-%d-abcdefgh", i), "expires_in": 3600})
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestConfidentialClientSecretNeverReachesStderr(t *testing.T) {
	const secret = "client-secret-value-7f3a9c"
	srv := confidentialProvider(t, secret)
	g := newLeakGuard(t)
	g.secret("the client secret", secret)
	g.secret("the device code", "device-code-0123456789")
	dir := filepath.Join(t.TempDir(), "cache")
	flags := []string{"--issuer-url=" + srv.URL, "--client-id=confidential", "--cache-dir=" + dir, "-v"}
	ctx := testContext(t, time.Minute)
	run := func(name string, more ...string) result {
		r := runPlugin(t, ctx, invocation{args: append(append([]string{"get-token"}, flags...), more...)})
		g.result(name, r)
		g.sessions(dir)
		return r
	}
	run("login", "--client-secret="+secret, "--device-login=always").credential(t)
	// Refresh refused with the request echoed back; no terminal, so it
	// ends in an error (its text is what kubectl shows).
	s := &session{cacheDir: dir}
	rewrite(t, s, expire)
	if r := run("refused refresh", "--client-secret="+secret, "--device-login=never"); r.exit == 0 {
		t.Errorf("a refused refresh without a way to sign in succeeded")
	}
	// A wrong secret: the server echoes it.
	run("wrong secret", "--client-secret="+secret+"-wrong", "--device-login=always")
	g.secret("the wrong client secret", secret+"-wrong")
	// The error command it suggests never carries the secret.
	if r := run("no session", "--client-secret="+secret, "--device-login=never", "--remember-failure=0"); !strings.Contains(r.stderr, "kubectl device-login login") {
		t.Errorf("no login command suggested:\n%s", r.stderr)
	}
}
