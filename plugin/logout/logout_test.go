package logout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/logout"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// settings resolves o as the command line's defaults would, with a fresh
// cache directory, and gives a terminal that writes to the buffer.
func settings(t *testing.T, o plugin.Options) (*plugin.Settings, *terminal.Terminal, *bytes.Buffer) {
	t.Helper()
	o.CacheDir, o.TokenCache = filepath.Join(t.TempDir(), "cache"), plugin.TokenCacheDisk
	o.Token, o.DeviceLogin, o.Output = plugin.TokenAccess, plugin.DeviceLoginAuto, plugin.OutputJSON
	o.GrantType, o.PKCE = plugin.GrantDeviceCode, "auto"
	s, err := plugin.Resolve(o)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	return s, terminal.New(&stderr, terminal.Options{}), &stderr
}

// TestAllNeverSendsASecret: All keeps its promise by itself, whatever
// settings it is given: even settings that hold a client secret and are
// those of a cached session revoke that session as a public client.
func TestAllNeverSendsASecret(t *testing.T) {
	const secret = "hush-5e1f"
	var mu sync.Mutex
	var revocations []string // what each revocation carried
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                        srv.URL,
			"device_authorization_endpoint": srv.URL + "/device",
			"token_endpoint":                srv.URL + "/token",
			"revocation_endpoint":           srv.URL + "/revoke",
		})
	})
	mux.HandleFunc("/revoke", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		_, basic, _ := r.BasicAuth()
		mu.Lock()
		revocations = append(revocations, "basic="+basic+" form="+r.PostForm.Get("client_secret")+" token="+r.PostForm.Get("token"))
		mu.Unlock()
	})
	s, tm, stderr := settings(t, plugin.Options{IssuerURL: srv.URL, ClientID: "confidential", ClientSecret: secret})
	ctx := context.Background()
	e := &cache.Entry{Key: s.Key, TokenEndpoint: srv.URL + "/token", RevocationEndpoint: srv.URL + "/revoke",
		AccessToken: "at", Expiry: time.Now().Add(time.Hour), RefreshToken: "rt", IssuedAt: time.Now()}
	if err := s.Sessions(ctx, tm).Save(e); err != nil {
		t.Fatal(err)
	}
	if err := logout.All(ctx, s, tm); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(revocations) != 1 || strings.Contains(revocations[0], secret) || !strings.HasSuffix(revocations[0], "token=rt") {
		t.Errorf("revocations: %q\n%s", revocations, stderr.String())
	}
}

// TestLogoutThatCannotWaitSaysWhatToDo: logout takes a session's lock as
// get-token does: it says it is waiting, and when the lock stays held past
// --lock-timeout it gives up with what to do, not a bare deadline error.
func TestLogoutThatCannotWaitSaysWhatToDo(t *testing.T) {
	s, tm, stderr := settings(t, plugin.Options{IssuerURL: "http://127.0.0.1:9", ClientID: "kubectl", LockTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	sessions := s.Sessions(ctx, tm)
	e := &cache.Entry{Key: s.Key, AccessToken: "at", Expiry: time.Now().Add(time.Hour), RefreshToken: "rt", IssuedAt: time.Now()}
	if err := sessions.Save(e); err != nil {
		t.Fatal(err)
	}
	held, err := sessions.Lock(ctx, s.Key.ID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	err = logout.All(ctx, s, tm)
	if err == nil || !strings.Contains(err.Error(), "gave up after waiting") {
		t.Errorf("logout with the session locked: %v", err)
	}
	if !strings.Contains(stderr.String(), "waiting for another kubectl-device-login to finish with this session") {
		t.Errorf("logout did not say it was waiting:\n%s", stderr.String())
	}
	if _, err := sessions.Load(s.Key); err != nil {
		t.Errorf("the session is gone after a logout that gave up: %v", err)
	}
}
