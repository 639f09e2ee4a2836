package plugin_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// pluginBin is the plugin binary under test, built once by TestMain (or
// given by $DEVICE_LOGIN_BIN, as `make test` does).
var pluginBin string

// cacheHome is the $XDG_CACHE_HOME of every process the tests run, so
// that a run without --cache-dir never touches the cache of whoever runs
// the tests.
var cacheHome string

func TestMain(m *testing.M) {
	// zitadel's op logs every route and every error answer through the
	// global logger; the tests read what the plugin says, not that.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	home, err := os.MkdirTemp("", "device-login-cache-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
	cacheHome = home
	if p := os.Getenv("DEVICE_LOGIN_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pluginBin = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "device-login-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	pluginBin = filepath.Join(dir, "kubectl-device_login")
	out, err := exec.Command("go", "build", "-o", pluginBin, "../cmd/kubectl-device_login").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the plugin: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// providers are the real providers every scenario runs against.
var providers = []struct {
	name  string
	start func(testing.TB, providertest.Options) providertest.Provider
}{
	{"oidc-provider", providertest.StartNode},
	{"zitadel", providertest.StartZitadel},
}

// userCodeRE finds the user code in the plugin's login prompt.
var userCodeRE = regexp.MustCompile(`Enter the code:\s+(\S+)\n`)

// result is one finished plugin process.
type result struct {
	stdout, stderr string
	exit           int
	took           time.Duration
}

// invocation describes one plugin process.
type invocation struct {
	args []string
	env  []string
	// onCode is called (once, in its own goroutine) with the user code
	// when the prompt appears on stderr.
	onCode func(code string)
}

// runPlugin runs the plugin binary and waits for it.
func runPlugin(t testing.TB, ctx context.Context, inv invocation) result {
	t.Helper()
	return runBinary(t, ctx, pluginBin, inv)
}

// runBinary runs a program (the plugin, kubectl) and waits for it.
func runBinary(t testing.TB, ctx context.Context, bin string, inv invocation) result {
	if testing.Short() {
		t.Skip("runs the plugin binary; skipped with -short")
	}
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, inv.args...)
	cmd.Env = append(baseEnv(), inv.env...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderrR, stderrW := io.Pipe()
	cmd.Stderr = stderrW
	var stderr bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchCode(stderrR, &stderr, inv.onCode)
	}()
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	stderrW.Close()
	wg.Wait()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: took}
	if ee, ok := err.(*exec.ExitError); ok {
		r.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", bin, err)
	}
	return r
}

// watchCode copies r into all, calling onCode when a user code appears.
func watchCode(r io.Reader, all *bytes.Buffer, onCode func(string)) {
	br := bufio.NewReader(r)
	called := false
	for {
		line, err := br.ReadString('\n')
		all.WriteString(line)
		if !called && onCode != nil {
			if m := userCodeRE.FindStringSubmatch(all.String()); m != nil {
				called = true
				go onCode(m[1])
			}
		}
		if err != nil {
			return
		}
	}
}

// baseEnv keeps the plugin away from the developer's own cache and from
// any KUBERNETES_EXEC_INFO of the test's parent.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBERNETES_EXEC_INFO=") || strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "XDG_CACHE_HOME="+cacheHome)
}

// session is one provider plus a cache directory and the flags for it.
type session struct {
	p        providertest.Provider
	cacheDir string
	flags    []string
}

func newSession(t testing.TB, p providertest.Provider, extra ...string) *session {
	dir := filepath.Join(t.TempDir(), "cache")
	return &session{p: p, cacheDir: dir, flags: append([]string{
		"--issuer-url=" + p.Issuer(), "--client-id=" + p.ClientID(), "--cache-dir=" + dir,
	}, extra...)}
}

func (s *session) args(cmd string, more ...string) []string {
	return append(append([]string{cmd}, s.flags...), more...)
}

// approve returns an onCode that approves the login at the provider.
func (s *session) approve(t testing.TB) func(string) {
	return func(code string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.p.Approve(ctx, code); err != nil {
			t.Errorf("approving %s: %v", code, err)
		}
	}
}

func (s *session) deny(t testing.TB) func(string) {
	return func(code string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.p.Deny(ctx, code); err != nil {
			t.Errorf("denying %s: %v", code, err)
		}
	}
}

// entry reads the only session in the cache directory.
func (s *session) entry(t testing.TB) *cache.Entry {
	t.Helper()
	l, err := (&cache.Sessions{Dir: s.cacheDir}).List()
	if err != nil || len(l) != 1 || len(l[0].Copies) != 1 || l[0].Newest() == nil {
		t.Fatalf("cache holds %+v (%v), want one session in one copy", l, err)
	}
	return l[0].Newest()
}

func (s *session) counts(t testing.TB) providertest.Counts {
	t.Helper()
	c, err := s.p.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// credential is the ExecCredential a run printed.
type credential struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Status     struct {
		Token               string `json:"token"`
		ExpirationTimestamp string `json:"expirationTimestamp"`
	} `json:"status"`
}

// credential checks that stdout is exactly one ExecCredential and decodes it.
func (r result) credential(t testing.TB) credential {
	t.Helper()
	if r.exit != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.exit, r.stderr)
	}
	c, err := decodeCredential(r.stdout)
	if err != nil {
		t.Fatalf("%v\n%q", err, r.stdout)
	}
	if exp, _ := time.Parse(time.RFC3339, c.Status.ExpirationTimestamp); c.Status.ExpirationTimestamp != "" && !exp.After(time.Now().Add(-time.Second)) {
		t.Errorf("expirationTimestamp %s is already past", exp)
	}
	return c
}

// decodeCredential checks that stdout is exactly one ExecCredential with
// a token and, if it has one, a well-formed expirationTimestamp.
func decodeCredential(stdout string) (credential, error) {
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	var c credential
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("stdout is not an ExecCredential: %v", err)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); strings.TrimSpace(string(rest)) != "" || dec.More() {
		return c, errors.New("stdout holds more than one document")
	}
	if c.Kind != "ExecCredential" || c.Status.Token == "" {
		return c, fmt.Errorf("not a credential: kind %q, apiVersion %q, token given: %t", c.Kind, c.APIVersion, c.Status.Token != "")
	}
	if c.Status.ExpirationTimestamp != "" {
		if _, err := time.Parse(time.RFC3339, c.Status.ExpirationTimestamp); err != nil {
			return c, fmt.Errorf("expirationTimestamp: %v", err)
		}
	}
	return c, nil
}

// noSecrets fails when stderr holds any token of the session.
func (r result) noSecrets(t testing.TB, e *cache.Entry) {
	t.Helper()
	if e == nil {
		return
	}
	for _, s := range []string{e.AccessToken, e.RefreshToken, e.IDToken} {
		if s != "" && strings.Contains(r.stderr, s) {
			t.Errorf("a token appears on stderr:\n%s", r.stderr)
		}
	}
}

// userinfo asks the provider who an access token belongs to, proving the
// token is one the provider honours.
func userinfo(t testing.TB, p providertest.Provider, accessToken string) (sub string, status int) {
	t.Helper()
	client := httpClientFor(p)
	resp, err := client.Get(p.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Userinfo string `json:"userinfo_endpoint"`
	}
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	req, _ := http.NewRequest("GET", d.Userinfo, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var u struct {
		Sub string `json:"sub"`
	}
	json.NewDecoder(resp.Body).Decode(&u)
	return u.Sub, resp.StatusCode
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// httpClientFor is a client that trusts the provider's certificate.
func httpClientFor(p providertest.Provider) *http.Client {
	if hc, ok := p.(interface{ HTTPClient() *http.Client }); ok {
		return hc.HTTPClient()
	}
	return http.DefaultClient
}

// proc is a running process whose output the test can watch.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr providertest.SyncBuffer
	start          time.Time
	done           chan struct{}
	res            result // set before done is closed
}

// spawn starts bin with args; stdin is /dev/null unless given. The
// process is killed when ctx ends. Call it from the test's goroutine.
func spawn(t testing.TB, ctx context.Context, bin string, args, env []string, stdin *os.File) *proc {
	if testing.Short() {
		t.Skip("runs the plugin binary; skipped with -short")
	}
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
		if t.Skipped() {
			return
		}
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

// restoreTmpfs undoes remountReadOnly and fill.
func restoreTmpfs(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,rw", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount rw: %v: %s", err, out)
	}
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
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

func (s *tcpSink) URL() string { return "http://" + s.l.Addr().String() }

func (s *tcpSink) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// decodeJWT decodes a JWT's header and claims without verifying it.
func decodeJWT(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (%d parts)", len(parts))
	}
	for i, out := range []*map[string]any{&header, &claims} {
		data, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
	}
	return header, claims
}
