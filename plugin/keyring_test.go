//go:build linux

package plugin_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/cache/keyringtest"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
	"github.com/devicelogin/kubectl-device-login/plugin/status"
)

// --token-cache=keyring, run as kubectl runs the plugin, against a real
// Secret Service: gnome-keyring-daemon on a private D-Bus session bus
// (keyringtest), which the plugin reaches through
// DBUS_SESSION_BUS_ADDRESS. What is in the keyring is read back with
// secret-tool, a client that shares no code with the plugin.

const keyringWarning = "warning: the keyring cannot be used"

// keyringSession reads the only keyring session of a cache directory with
// secret-tool (see keyringData) and checks it against the header's
// checksum. It also returns the accounts of every item.
func keyringSession(t *testing.T, kr *keyringtest.Keyring, dir string) (*cache.Entry, []string) {
	t.Helper()
	records, _ := filepath.Glob(filepath.Join(dir, "*.keyring"))
	if len(records) != 1 {
		t.Fatalf("index records %v, want one", records)
	}
	id := strings.TrimSuffix(filepath.Base(records[0]), ".keyring")
	service := "kubectl-device-login:" + dir
	data, f, err := keyringData(func(account string) (string, bool) { return kr.Lookup(t, service, account) }, id)
	if err != nil {
		t.Fatalf("%v in service %q; items: %v", err, service, kr.Accounts(t, service))
	}
	if sha256Hex(data) != f[3] {
		t.Fatalf("the parts do not match the head's checksum")
	}
	e, reason := cache.Decode([]byte(data))
	if reason != "" {
		t.Fatalf("the keyring session: %s", reason)
	}
	return e, kr.Accounts(t, service)
}

// keyringData joins a keyring session's items, in the layout
// docs/token-cache.md describes: the head item (account ID) holds a header
// line "kubectl-device-login/keyring/v1 SLOT PARTS SHA256" and the first
// part; parts follow as ID-<slot><n>. It returns the document and the
// header's fields.
func keyringData(lookup func(account string) (string, bool), id string) (data string, header []string, err error) {
	head, ok := lookup(id)
	if !ok {
		return "", nil, fmt.Errorf("no keyring item %q", id)
	}
	line, data, _ := strings.Cut(head, "\n")
	header = strings.Fields(line)
	if len(header) != 4 || header[0] != "kubectl-device-login/keyring/v1" {
		return "", nil, fmt.Errorf("head item starts %q", line)
	}
	n, _ := strconv.Atoi(header[2])
	for i := 1; i < n; i++ {
		part, ok := lookup(fmt.Sprintf("%s-%s%d", id, header[1], i))
		if !ok {
			return "", nil, fmt.Errorf("part %d of %d missing", i+1, n)
		}
		data += part
	}
	return data, header, nil
}

// onlyIndexOnDisk fails when the cache directory holds a session file or
// any file with one of e's tokens: in keyring mode only the token-free
// index record and the lock live there.
func onlyIndexOnDisk(t *testing.T, dir string, e *cache.Entry) {
	t.Helper()
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		name := de.Name()
		if !strings.HasSuffix(name, ".keyring") && !strings.HasSuffix(name, ".lock") {
			t.Errorf("the cache directory holds %s", name)
		}
		data, _ := os.ReadFile(filepath.Join(dir, name))
		for _, tok := range []string{e.AccessToken, e.RefreshToken, e.IDToken} {
			if tok != "" && strings.Contains(string(data), tok) {
				t.Errorf("%s holds a token", name)
			}
		}
	}
}

func TestKeyringSaveLoadRefreshLogout(t *testing.T) {
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			kr := keyringtest.Start(t)
			p := pv.start(t, providertest.Options{AccessTokenTTL: 4 * time.Second, IDTokenTTL: 4 * time.Second})
			s := newSession(t, p, "--token-cache=keyring")
			ctx := testContext(t, 2*time.Minute)
			run := func(args []string, onCode func(string)) result {
				return runPlugin(t, ctx, invocation{args: args, env: kr.Env(), onCode: onCode})
			}

			r := run(s.args("get-token", "--device-login=always"), s.approve(t))
			cred := r.credential(t)
			e, items := keyringSession(t, kr, s.cacheDir)
			if e.AccessToken != cred.Status.Token || e.RefreshToken == "" || e.IDToken == "" {
				t.Fatalf("the keyring session does not hold the tokens just obtained")
			}
			if len(items) != 1 {
				t.Errorf("keyring items %v, want one", items)
			}
			if strings.Contains(r.stderr, "warning") {
				t.Errorf("a warning with a working keyring:\n%s", r.stderr)
			}
			onlyIndexOnDisk(t, s.cacheDir, e)
			r.noSecrets(t, e)

			// A cache hit, from the keyring, quietly.
			r = run(s.args("get-token"), nil)
			if r.credential(t).Status.Token != cred.Status.Token || r.stderr != "" {
				t.Errorf("cache hit: a different token or stderr %q", r.stderr)
			}

			// A refresh rotates the tokens in the keyring.
			time.Sleep(2500 * time.Millisecond)
			r = run(s.args("get-token", "--device-login=never"), nil)
			refreshed := r.credential(t)
			e2, _ := keyringSession(t, kr, s.cacheDir)
			if refreshed.Status.Token == cred.Status.Token || e2.AccessToken != refreshed.Status.Token || e2.RefreshToken == e.RefreshToken {
				t.Fatalf("the refresh did not land in the keyring\n%s", r.stderr)
			}
			if sub, status := userinfo(t, p, refreshed.Status.Token); status != 200 || sub != p.Subject() {
				t.Errorf("refreshed token not honoured: %d", status)
			}
			onlyIndexOnDisk(t, s.cacheDir, e2)
			r.noSecrets(t, e)
			r.noSecrets(t, e2)
			if c := s.counts(t); c.RefreshTokenGrant != 1 || c.DeviceAuthorization != 1 {
				t.Errorf("counts %+v, want one device login and one refresh", c)
			}

			// status lists it, from the keyring, without tokens.
			r = run([]string{"status", "--cache-dir=" + s.cacheDir, "--token-cache=keyring"}, nil)
			for _, want := range []string{p.Issuer(), "refresh token:", "stored:", "in the keyring (index record " + s.cacheDir, "Keyring: usable"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("status lacks %q:\n%s", want, r.stdout)
				}
			}
			r = run([]string{"status", "-o", "json", "--cache-dir=" + s.cacheDir}, nil)
			var infos []status.Session
			if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil || len(infos) != 1 {
				t.Fatalf("status -o json: %v\n%s", err, r.stdout)
			}
			if si := infos[0]; si.Storage != "keyring" || !si.Valid || !si.Refreshable || si.Subject != p.Subject() {
				t.Errorf("status -o json: %+v", si)
			}
			for _, tok := range []string{e2.AccessToken, e2.RefreshToken, e2.IDToken} {
				if strings.Contains(r.stdout, tok) {
					t.Errorf("status printed a token")
				}
			}

			// logout: revoked at the provider, gone from the keyring.
			r = run(s.args("logout"), nil)
			if r.exit != 0 || !strings.Contains(r.stderr, "Signed out") {
				t.Fatalf("logout: exit %d\n%s", r.exit, r.stderr)
			}
			if c := s.counts(t); c.Revocation != 1 {
				t.Errorf("counts %+v, want one revocation", c)
			}
			if items := kr.Accounts(t, "kubectl-device-login:"+s.cacheDir); len(items) != 0 {
				t.Errorf("logout left keyring items %v", items)
			}
			if records, _ := filepath.Glob(filepath.Join(s.cacheDir, "*.keyring")); len(records) != 0 {
				t.Errorf("logout left %v", records)
			}
		})
	}
}

func TestKeyringLockedFallsBackToDiskWithOneWarning(t *testing.T) {
	kr := keyringtest.Start(t)
	kr.Lock(t)
	p := providertest.StartZitadel(t, providertest.Options{AccessTokenTTL: 4 * time.Second, IDTokenTTL: 4 * time.Second})
	s := newSession(t, p, "--token-cache=keyring")
	ctx := testContext(t, 2*time.Minute)
	run := func(args []string, onCode func(string)) result {
		return runPlugin(t, ctx, invocation{args: args, env: kr.Env(), onCode: onCode})
	}

	// The fresh token is printed and kept on disk, with one warning.
	r := run(s.args("get-token", "--device-login=always"), s.approve(t))
	cred := r.credential(t)
	if n := strings.Count(r.stderr, keyringWarning); n != 1 || !strings.Contains(r.stderr, "locked") || !strings.Contains(r.stderr, s.cacheDir) {
		t.Errorf("%d keyring warnings, want one naming the locked keyring and the file:\n%s", n, r.stderr)
	}
	e := s.entry(t)
	if e.AccessToken != cred.Status.Token || e.RefreshToken == "" {
		t.Fatalf("the disk session does not hold the new tokens")
	}
	r.noSecrets(t, e)
	if items := kr.Accounts(t, "kubectl-device-login:"+s.cacheDir); len(items) != 0 {
		t.Errorf("keyring items %v while locked", items)
	}

	// A cache hit from the disk file: quiet, not a new warning per kubectl
	// command.
	r = run(s.args("get-token"), nil)
	if r.credential(t).Status.Token != cred.Status.Token || r.stderr != "" {
		t.Errorf("cache hit: a different token or stderr %q", r.stderr)
	}

	// Unlocked: the next refresh moves the session into the keyring.
	kr.Unlock(t)
	time.Sleep(2500 * time.Millisecond)
	r = run(s.args("get-token", "--device-login=never"), nil)
	refreshed := r.credential(t)
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("a warning once unlocked:\n%s", r.stderr)
	}
	e2, _ := keyringSession(t, kr, s.cacheDir)
	if e2.AccessToken != refreshed.Status.Token || e2.RefreshToken == e.RefreshToken {
		t.Fatalf("the refreshed session is not in the keyring")
	}
	onlyIndexOnDisk(t, s.cacheDir, e)
	onlyIndexOnDisk(t, s.cacheDir, e2)
	if c := s.counts(t); c.DeviceAuthorization != 1 || c.RefreshTokenGrant != 1 {
		t.Errorf("counts %+v", c)
	}
}

func TestKeyringWithoutDBus(t *testing.T) {
	p := providertest.StartZitadel(t, providertest.Options{})
	// A dbus-launch that only leaves a mark: godbus runs dbus-launch when
	// it finds no session bus, which starts a daemon that outlives the
	// plugin. The plugin must stop before that.
	bin := t.TempDir()
	mark := filepath.Join(bin, "dbus-launch-ran")
	os.WriteFile(filepath.Join(bin, "dbus-launch"), []byte("#!/bin/sh\ntouch "+mark+"\nexit 1\n"), 0o755)
	path := "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")

	for name, tc := range map[string]struct {
		address, reason string
	}{
		"a bus address that leads nowhere": {"unix:path=" + filepath.Join(t.TempDir(), "no-bus"), "cannot reach the D-Bus session bus"},
		"no bus address":                   {"", "no D-Bus session bus"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.address == "" {
				for _, f := range []string{"bus", "dbus-session"} {
					if _, err := os.Stat(filepath.Join("/run/user", strconv.Itoa(os.Getuid()), f)); err == nil {
						t.Skip("this user has a session bus in /run/user, which the plugin would rightly use")
					}
				}
			}
			s := newSession(t, p, "--token-cache=keyring")
			ctx := testContext(t, time.Minute)
			env := []string{"DBUS_SESSION_BUS_ADDRESS=" + tc.address, path}
			start := time.Now()
			r := runPlugin(t, ctx, invocation{args: s.args("login"), env: env, onCode: s.approve(t)})
			if r.exit != 0 {
				t.Fatalf("login: exit %d\n%s", r.exit, r.stderr)
			}
			if n := strings.Count(r.stderr, keyringWarning); n != 1 || !strings.Contains(r.stderr, tc.reason) {
				t.Errorf("%d keyring warnings, want one saying %q:\n%s", n, tc.reason, r.stderr)
			}
			e := s.entry(t)
			r.noSecrets(t, e)
			r = runPlugin(t, ctx, invocation{args: s.args("get-token"), env: env})
			if r.credential(t).Status.Token != e.AccessToken || r.stderr != "" {
				t.Errorf("cache hit: stderr %q", r.stderr)
			}
			if _, err := os.Stat(mark); err == nil {
				t.Errorf("dbus-launch was run")
			}
			t.Logf("login and a cache hit took %s", time.Since(start))
		})
	}
}

func TestStatusAndLogoutAllCoverTheKeyring(t *testing.T) {
	kr := keyringtest.Start(t)
	p := providertest.StartZitadel(t, providertest.Options{})
	ctx := testContext(t, 2*time.Minute)
	onDisk := newSession(t, p)
	inKeyring := newSession(t, p, "--token-cache=keyring", "--scope=openid", "--scope=offline_access", "--scope=email")
	inKeyring.cacheDir = onDisk.cacheDir
	inKeyring.flags[2] = "--cache-dir=" + onDisk.cacheDir
	dir := onDisk.cacheDir
	run := func(args ...string) result {
		return runPlugin(t, ctx, invocation{args: args, env: kr.Env()})
	}
	for _, s := range []*session{onDisk, inKeyring} {
		if r := runPlugin(t, ctx, invocation{args: s.args("login"), env: kr.Env(), onCode: s.approve(t)}); r.exit != 0 {
			t.Fatalf("login: %s", r.stderr)
		}
	}
	service := "kubectl-device-login:" + dir

	// status without --token-cache lists both.
	r := run("status", "--cache-dir="+dir)
	if strings.Count(r.stdout, p.Issuer()) != 2 || !strings.Contains(r.stdout, "  file:") || !strings.Contains(r.stdout, "in the keyring") {
		t.Errorf("status:\n%s", r.stdout)
	}

	// Locked: status shows the keyring session and why it cannot be read;
	// logout --all signs out of the disk one and keeps the keyring one's
	// index record, failing with a reason.
	kr.Lock(t)
	r = run("status", "--cache-dir="+dir)
	if !strings.Contains(r.stdout, "problem:") || !strings.Contains(r.stdout, "locked") || strings.Count(r.stdout, p.Issuer()) != 2 {
		t.Errorf("status while locked:\n%s", r.stdout)
	}
	r = run("logout", "--all", "--cache-dir="+dir)
	if r.exit == 0 || strings.Count(r.stderr, "Signed out") != 1 || !strings.Contains(r.stderr, "run logout again once the keyring can be used") {
		t.Errorf("logout --all while locked: exit %d\n%s", r.exit, r.stderr)
	}
	if records, _ := filepath.Glob(filepath.Join(dir, "*.keyring")); len(records) != 1 {
		t.Errorf("index records %v, want the keyring session's kept", records)
	}

	// Unlocked: logout --all, without --token-cache, finishes the job,
	// index records it cannot read included.
	kr.Unlock(t)
	os.WriteFile(filepath.Join(dir, "0000.keyring"), []byte("garbage"), 0o600)
	r = run("status", "--cache-dir="+dir)
	if !strings.Contains(r.stdout, "0000.keyring") || !strings.Contains(r.stdout, "not valid JSON") {
		t.Errorf("status does not show the damaged index record:\n%s", r.stdout)
	}
	r = run("logout", "--all", "--cache-dir="+dir)
	if r.exit != 0 || strings.Count(r.stderr, "Signed out") != 1 || !strings.Contains(r.stderr, "Deleted the unusable index record") {
		t.Fatalf("logout --all: exit %d\n%s", r.exit, r.stderr)
	}
	if items := kr.Accounts(t, service); len(items) != 0 {
		t.Errorf("keyring items left: %v", items)
	}
	if c := onDisk.counts(t); c.Revocation != 2 {
		t.Errorf("counts %+v, want two revocations", c)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.[jk]*")); len(files) != 0 {
		t.Errorf("left behind: %v", files)
	}
	r = run("logout", "--all", "--cache-dir="+dir)
	if r.exit != 0 || !strings.Contains(r.stderr, "nothing to do") {
		t.Errorf("second logout --all: exit %d\n%s", r.exit, r.stderr)
	}
}

// tokenServer is a scripted OAuth 2.0 provider that issues 10 KB access
// tokens. It is an httptest server because neither real test provider can
// produce a token that large (zitadel's op and oidc-provider issue tokens
// of one or two kilobytes); such tokens come from providers that put many
// group claims in a JWT. It approves every device login at once and
// rotates refresh tokens.
type tokenServer struct {
	*httptest.Server
	mu       sync.Mutex
	refresh  string
	issued   []string
	revoked  int
	lifetime time.Duration
}

func newTokenServer(t *testing.T, lifetime time.Duration) *tokenServer {
	ts := &tokenServer{lifetime: lifetime}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{
			"issuer":                        ts.URL,
			"device_authorization_endpoint": ts.URL + "/device",
			"token_endpoint":                ts.URL + "/token",
			"revocation_endpoint":           ts.URL + "/revoke",
		})
	})
	mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"device_code": "device-code", "user_code": "BIGT-OKEN", "verification_uri": ts.URL + "/verify",
			"expires_in": 300, "interval": 1,
		})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		switch r.FormValue("grant_type") {
		case "urn:ietf:params:oauth:grant-type:device_code":
		case "refresh_token":
			if r.FormValue("refresh_token") != ts.refresh {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(`{"error":"invalid_grant"}`))
				return
			}
		default:
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		access := randomToken(10 << 10)
		ts.refresh = randomToken(64)
		ts.issued = append(ts.issued, access)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": access, "token_type": "Bearer", "refresh_token": ts.refresh,
			"expires_in": int(ts.lifetime / time.Second),
		})
	})
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if r.FormValue("token") == ts.refresh {
			ts.revoked++
		}
	})
	ts.Server = httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func randomToken(n int) string {
	b := make([]byte, n*3/4)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestKeyringTenKilobyteToken(t *testing.T) {
	kr := keyringtest.Start(t)
	ts := newTokenServer(t, 4*time.Second)
	dir := filepath.Join(t.TempDir(), "cache")
	args := func(cmd string, more ...string) []string {
		return append([]string{cmd, "--issuer-url=" + ts.URL, "--client-id=big", "--cache-dir=" + dir, "--token-cache=keyring"}, more...)
	}
	ctx := testContext(t, time.Minute)
	run := func(args []string) result { return runPlugin(t, ctx, invocation{args: args, env: kr.Env()}) }

	r := run(args("get-token", "--device-login=always"))
	cred := r.credential(t)
	if len(cred.Status.Token) < 10<<10 {
		t.Fatalf("token of %d bytes", len(cred.Status.Token))
	}
	e, items := keyringSession(t, kr, dir)
	if e.AccessToken != cred.Status.Token {
		t.Fatalf("the keyring does not hold the 10 KB token")
	}
	// A Secret Service takes it whole; the 2 KiB parts used on macOS and
	// Windows are tested in cache/keyring_test.go.
	t.Logf("keyring items: %v", items)
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("warning:\n%s", r.stderr)
	}
	onlyIndexOnDisk(t, dir, e)
	r.noSecrets(t, e)

	r = run(args("get-token"))
	if r.credential(t).Status.Token != cred.Status.Token || r.stderr != "" {
		t.Errorf("cache hit: stderr %q", r.stderr)
	}
	time.Sleep(2500 * time.Millisecond)
	r = run(args("get-token", "--device-login=never"))
	refreshed := r.credential(t)
	e2, _ := keyringSession(t, kr, dir)
	ts.mu.Lock()
	issued := len(ts.issued)
	ts.mu.Unlock()
	if refreshed.Status.Token == cred.Status.Token || e2.AccessToken != refreshed.Status.Token || issued != 2 {
		t.Fatalf("refresh: %d tokens issued\n%s", issued, r.stderr)
	}
	onlyIndexOnDisk(t, dir, e2)

	r = run(args("logout"))
	ts.mu.Lock()
	revoked := ts.revoked
	ts.mu.Unlock()
	if r.exit != 0 || revoked != 1 {
		t.Fatalf("logout: exit %d, %d revocations\n%s", r.exit, revoked, r.stderr)
	}
	if items := kr.Accounts(t, "kubectl-device-login:"+dir); len(items) != 0 {
		t.Errorf("keyring items left: %v", items)
	}
}
