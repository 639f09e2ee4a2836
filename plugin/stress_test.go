package plugin_test

// Stampedes, held locks, signals and kubectl's re-runs, all through the
// built plugin binary. The stampedes count requests at a real
// rotating provider (npm oidc-provider, which revokes the grant when a
// rotated refresh token is spent twice), so "one refresh" is the
// provider's figure, not ours.
//
// The stampede tests start hundreds of processes; they run when
// DEVICE_LOGIN_STRESS=1 (make stress). Everything else here runs in every
// `go test`.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/devicelogin/kubectl-device-login/cache"
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
