package plugin_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// --token-cache=none against a real provider: nothing is kept, so every
// run signs in, and the cache directory gets no session, no lock, no
// index record.
func TestTokenCacheNone(t *testing.T) {
	t.Parallel()
	p := providertest.StartZitadel(t, providertest.Options{})
	s := newSession(t, p, "--token-cache=none")
	ctx := testContext(t, time.Minute)

	var tokens []string
	for i := 0; i < 2; i++ {
		r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), onCode: s.approve(t)})
		cred := r.credential(t)
		if sub, status := userinfo(t, p, cred.Status.Token); status != 200 || sub != p.Subject() {
			t.Errorf("run %d: token not honoured: %d", i+1, status)
		}
		tokens = append(tokens, cred.Status.Token)
	}
	if c := s.counts(t); c.DeviceAuthorization != 2 || c.RefreshTokenGrant != 0 {
		t.Errorf("counts %+v, want a device login per run and no refresh", c)
	}
	if tokens[0] == tokens[1] {
		t.Errorf("the second run reused the first run's token")
	}
	if des, err := os.ReadDir(s.cacheDir); !os.IsNotExist(err) {
		t.Errorf("the cache directory was created: %v %v", des, err)
	}

	// Where no device login can start, the message says what to do.
	r := runPlugin(t, ctx, invocation{args: s.args("get-token"),
		env: []string{`KUBERNETES_EXEC_INFO={"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`}})
	if r.exit != 1 || !strings.Contains(r.stderr, "--token-cache=none keeps no session between runs") {
		t.Errorf("no terminal: exit %d\n%s", r.exit, r.stderr)
	}
	// login would keep nothing: refused before any request.
	r = runPlugin(t, ctx, invocation{args: s.args("login")})
	if r.exit != 1 || !strings.Contains(r.stderr, "login with --token-cache=none would keep nothing") {
		t.Errorf("login: exit %d\n%s", r.exit, r.stderr)
	}
	if c := s.counts(t); c.DeviceAuthorization != 2 {
		t.Errorf("counts %+v after the refused runs", c)
	}
}

func TestTokenCacheFlagIsChecked(t *testing.T) {
	t.Parallel()
	p := providertest.StartZitadel(t, providertest.Options{})
	s := newSession(t, p, "--token-cache=vault")
	ctx := testContext(t, time.Minute)
	for _, args := range [][]string{s.args("get-token"), s.args("login"), {"status", "--token-cache=vault"}, {"logout", "--all", "--token-cache=vault"}} {
		r := runPlugin(t, ctx, invocation{args: args})
		if r.exit != 1 || !strings.Contains(r.stderr, `--token-cache must be disk, keyring or none, not "vault"`) {
			t.Errorf("%s: exit %d\n%s", args[0], r.exit, r.stderr)
		}
	}
}
