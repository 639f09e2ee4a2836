//go:build linux

package plugin_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/cache/keyringtest"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
	"github.com/devicelogin/kubectl-device-login/plugin/status"
)

// A session that lives in the keyring as well (a real Secret Service, see
// cache/keyringtest), in the commands that replace or end it.

// TestLogoutEndsEveryCopy (issue 12, defect 2; issue 14, defect 5): a
// session can have several copies, each with its own live refresh token:
// the keyring's, a file (the keyring's fallback, or from before a switch
// of --token-cache), and what an interrupted save left. status lists them
// all, and logout (with no --token-cache flag) revokes every distinct
// refresh token and deletes every copy.
func TestLogoutEndsEveryCopy(t *testing.T) {
	t.Parallel()
	kr := keyringtest.Start(t)
	p := providertest.StartNode(t, providertest.Options{})
	ctx := testContext(t, 2*time.Minute)
	s := newSession(t, p)
	id := keyID(p.Issuer(), p.ClientID())
	// The keyring copy.
	if r := runPlugin(t, ctx, invocation{args: s.args("login", "--token-cache=keyring"), env: kr.Env(), onCode: s.approve(t)}); r.exit != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	// Two more sign-ins of the same login elsewhere give a file and a
	// temporary file with refresh tokens of their own.
	other := func(name string) *cache.Entry {
		o := newSession(t, p)
		if r := runPlugin(t, ctx, invocation{args: o.args("login"), onCode: o.approve(t)}); r.exit != 0 {
			t.Fatalf("login: %s", r.stderr)
		}
		e := o.entry(t)
		data, err := os.ReadFile(filepath.Join(o.cacheDir, id+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.cacheDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return e
	}
	file := other(id + ".json")
	temp := other(".tmp-" + id + "-123456")
	inKeyring, _ := keyringSession(t, kr, s.cacheDir)

	r := runPlugin(t, ctx, invocation{args: []string{"status", "-o", "json", "--cache-dir=" + s.cacheDir}, env: kr.Env()})
	var list []status.Session
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || len(list[0].Copies) != 3 {
		t.Errorf("status does not list the three copies: %v\n%s", err, r.stdout)
	}
	r = runPlugin(t, ctx, invocation{args: s.args("logout"), env: kr.Env()})
	if r.exit != 0 {
		t.Fatalf("logout: exit %d\n%s", r.exit, r.stderr)
	}
	for what, rt := range map[string]string{"keyring": inKeyring.RefreshToken, "file": file.RefreshToken, "temporary file": temp.RefreshToken} {
		if live(t, p, rt) {
			t.Errorf("the %s copy's refresh token is still live after logout", what)
		}
	}
	if left, _ := os.ReadDir(s.cacheDir); len(left) != 0 {
		t.Errorf("logout left %v", left)
	}
	if items := kr.Accounts(t, "kubectl-device-login:"+s.cacheDir); len(items) != 0 {
		t.Errorf("logout left keyring items %v", items)
	}
}

// TestLockedKeyringStopsASignIn (issue 14, defect 4): a keyring that holds
// the session but is locked is not "no session": get-token and login say
// the keyring is locked and how to unlock it, and start no sign-in that
// would replace a session nobody could then revoke.
func TestLockedKeyringStopsASignIn(t *testing.T) {
	t.Parallel()
	kr := keyringtest.Start(t)
	p := providertest.StartZitadel(t, providertest.Options{AutoApprove: true})
	s := newSession(t, p, "--token-cache=keyring")
	ctx := testContext(t, time.Minute)
	if r := runPlugin(t, ctx, invocation{args: s.args("login"), env: kr.Env()}); r.exit != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	devices := s.counts(t).DeviceAuthorization
	kr.Lock(t)
	defer kr.Unlock(t)
	for _, args := range [][]string{s.args("get-token", "--device-login=always"), s.args("login"), s.args("login", "--force")} {
		r := runPlugin(t, ctx, invocation{args: args, env: kr.Env()})
		if r.exit == 0 || !strings.Contains(r.stderr, "keyring") || !strings.Contains(r.stderr, "locked") || !strings.Contains(r.stderr, "unlock") {
			t.Errorf("%s with a locked keyring: exit %d\n%s", args[0], r.exit, r.stderr)
		}
	}
	if c := s.counts(t); c.DeviceAuthorization != devices {
		t.Errorf("a sign-in started over the locked keyring's session")
	}
	if files, _ := filepath.Glob(filepath.Join(s.cacheDir, "*.json")); len(files) != 0 {
		t.Errorf("a session went to disk beside the locked keyring's: %v", files)
	}
}
