package plugin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Client secrets: where they go, and where they never go.

// confidentialProvider is a scripted provider for a confidential client:
// neither real provider here is set up with one (both offer only a public
// client), so this checks a client secret's path through the binary. It
// answers the device flow at once and refuses every refresh, echoing the
// request back in a non-standard field as a careless server might.
// confidential is a scripted confidential-client provider.
type confidential struct {
	*httptest.Server
	mu          sync.Mutex
	revocations []string // the client secret each revocation carried
}

// revocationSecrets are the client secrets the revocations carried ("" for
// none).
func (c *confidential) revocationSecrets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.revocations)
}

func confidentialProvider(t *testing.T, secret string) *confidential {
	n := 0
	var mu sync.Mutex
	mux := http.NewServeMux()
	// The server is made before it starts, so that handlers read its URL
	// without racing the test.
	srv := &confidential{Server: httptest.NewUnstartedServer(mux)}
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
		reply(w, 200, map[string]any{"issuer": srv.URL, "device_authorization_endpoint": srv.URL + "/device", "token_endpoint": srv.URL + "/token", "revocation_endpoint": srv.URL + "/revoke"})
	})
	mux.HandleFunc("/revoke", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		srv.mu.Lock()
		srv.revocations = append(srv.revocations, sent(r))
		srv.mu.Unlock()
		w.WriteHeader(http.StatusOK)
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
	t.Parallel()
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

// TestASecretGoesOnlyWhereItBelongs (issue 12, defect 9): logout --all
// never sends a client secret (it would reach every provider in the
// cache); it refuses one, and signs out of each session as its own
// client. A secret comes from $DEVICE_LOGIN_CLIENT_SECRET or
// --client-secret-file as well as from the command line.
func TestASecretGoesOnlyWhereItBelongs(t *testing.T) {
	t.Parallel()
	const secretA, secretB = "secret-of-client-a-4d2f", "secret-of-client-b-9e1c"
	a, b := confidentialProvider(t, secretA), confidentialProvider(t, secretB)
	dir := filepath.Join(t.TempDir(), "cache")
	ctx := testContext(t, time.Minute)
	g := newLeakGuard(t)
	g.secret("client A's secret", secretA)
	g.secret("client B's secret", secretB)
	file := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(file, []byte(secretB+"\n"), 0o600)
	for name, inv := range map[string]invocation{
		"A, secret from the environment": {args: []string{"login", "--issuer-url=" + a.URL, "--client-id=confidential", "--cache-dir=" + dir}, env: []string{"DEVICE_LOGIN_CLIENT_SECRET=" + secretA}},
		"B, secret from a file":          {args: []string{"login", "--issuer-url=" + b.URL, "--client-id=confidential", "--cache-dir=" + dir, "--client-secret-file=" + file}},
	} {
		r := runPlugin(t, ctx, inv)
		g.result(name, r)
		if r.exit != 0 {
			t.Fatalf("%s: exit %d\n%s", name, r.exit, r.stderr)
		}
	}
	g.sessions(dir)
	r := runPlugin(t, ctx, invocation{args: []string{"logout", "--all", "--cache-dir=" + dir, "--client-secret=" + secretA}})
	g.result("logout --all with a secret", r)
	if r.exit == 0 || !strings.Contains(r.stderr, "does not take a client secret") {
		t.Errorf("logout --all took a client secret: exit %d\n%s", r.exit, r.stderr)
	}
	r = runPlugin(t, ctx, invocation{args: []string{"logout", "--all", "--cache-dir=" + dir}, env: []string{"DEVICE_LOGIN_CLIENT_SECRET=" + secretA}})
	g.result("logout --all", r)
	if strings.Count(r.stderr, "Signed out") != 2 {
		t.Errorf("logout --all did not sign out of both:\n%s", r.stderr)
	}
	for name, srv := range map[string]*confidential{"A": a, "B": b} {
		for _, got := range srv.revocationSecrets() {
			if got != "" {
				t.Errorf("provider %s got a client secret with a revocation from logout --all", name)
			}
		}
	}
}
