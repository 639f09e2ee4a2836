package plugin

// These tests use a small scripted httptest provider, on purpose: they
// cover protocol corners that the real providers used elsewhere (npm
// oidc-provider, zitadel's op) cannot be made to show — slow_down, 5xx and
// dropped connections while polling, garbage and oversize bodies,
// redirects, lying discovery documents. Everything a real provider can do
// is tested against a real one in e2e_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// fakeClock never sleeps: Sleep advances the time and records the wait.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	return nil
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fakeClock) Sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

// deviceCodeGrant is RFC 8628's grant type.
const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

// script is a scripted provider. Token answers are consumed in order; the
// last one repeats.
type script struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	device func(w http.ResponseWriter, r *http.Request)
	token  []func(w http.ResponseWriter, r *http.Request)
	issuer string // overrides the discovery issuer when set
	// methods is the discovery's token_endpoint_auth_methods_supported.
	methods []string
	// tokenEndpoint overrides the discovery's token_endpoint.
	tokenEndpoint string
	// noDeviceEndpoint leaves device_authorization_endpoint out of the
	// discovery document.
	noDeviceEndpoint bool
	forms            []url.Values
	auths            []string // each request's HTTP Basic user:password, or ""
	counts           map[string]int
}

// basic is the request's HTTP Basic credentials as "user:password".
func basic(r *http.Request) string {
	if u, p, ok := r.BasicAuth(); ok {
		return u + ":" + p
	}
	return ""
}

func newScript(t *testing.T) *script {
	s := &script{t: t, counts: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		s.count("discovery")
		iss := s.srv.URL
		if s.issuer != "" {
			iss = s.issuer
		}
		doc := map[string]any{
			"issuer":                        iss,
			"device_authorization_endpoint": s.srv.URL + "/device",
			"token_endpoint":                s.srv.URL + "/token",
		}
		if s.methods != nil {
			doc["token_endpoint_auth_methods_supported"] = s.methods
		}
		if s.tokenEndpoint != "" {
			doc["token_endpoint"] = s.tokenEndpoint
		}
		if s.noDeviceEndpoint {
			delete(doc, "device_authorization_endpoint")
		}
		writeJSON(w, 200, doc)
	})
	mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
		s.count("device")
		r.ParseForm()
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		s.auths = append(s.auths, basic(r))
		h := s.device
		s.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		writeJSON(w, 200, map[string]any{
			"device_code": "dc-secret", "user_code": "WDJB-MJHT",
			"verification_uri":          s.srv.URL + "/verify",
			"verification_uri_complete": s.srv.URL + "/verify?user_code=WDJB-MJHT",
			"expires_in":                60, "interval": 1,
		})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		s.count("token:" + r.PostForm.Get("grant_type"))
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		s.auths = append(s.auths, basic(r))
		var h func(w http.ResponseWriter, r *http.Request)
		if len(s.token) > 0 {
			h = s.token[0]
			if len(s.token) > 1 {
				s.token = s.token[1:]
			}
		}
		s.mu.Unlock()
		if h == nil {
			t.Errorf("unexpected token request")
			w.WriteHeader(500)
			return
		}
		h(w, r)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		s.count("elsewhere")
		writeJSON(w, 200, map[string]any{"access_token": "stolen", "expires_in": 3600})
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *script) count(k string) {
	s.mu.Lock()
	s.counts[k]++
	s.mu.Unlock()
}

func (s *script) Count(k string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[k]
}

func (s *script) Token(hs ...func(w http.ResponseWriter, r *http.Request)) {
	s.mu.Lock()
	s.token = hs
	s.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func oauthErr(code string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, map[string]any{"error": code, "error_description": "desc of " + code})
	}
}

func status(code int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}

func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// noExpiresIn makes success leave expires_in out.
const noExpiresIn = math.MinInt

func success(access, refresh string, expiresIn int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		m := map[string]any{"access_token": access, "token_type": "Bearer"}
		if expiresIn != noExpiresIn {
			m["expires_in"] = expiresIn
		}
		if refresh != "" {
			m["refresh_token"] = refresh
		}
		writeJSON(w, 200, m)
	}
}

type run struct {
	stdout, stderr bytes.Buffer
	err            error
}

// options for an in-process run against the script, with a terminal.
func (s *script) options(t *testing.T, clock provider.Clock) Options {
	return Options{
		IssuerURL:   s.srv.URL,
		ClientID:    "kubectl",
		CacheDir:    filepath.Join(t.TempDir(), "cache"),
		DeviceLogin: DeviceLoginAlways,
		Clock:       clock,
	}
}

// getToken runs get-token in this process as main does: settings
// resolved, messages to a terminal (not a TTY), the credential written,
// the error sanitized as main prints it.
func getToken(t *testing.T, o Options) *run {
	return getTokenVerbose(t, o, false)
}

func getTokenVerbose(t *testing.T, o Options, verbose bool) *run {
	t.Helper()
	r := &run{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Resolve(o)
	if err == nil {
		var cred Credential
		if cred, err = GetToken(ctx, s, terminal.New(&r.stderr, terminal.Options{Verbose: verbose})); err == nil {
			err = cred.Write(&r.stdout)
		}
	}
	if err != nil {
		r.err = errors.New(terminal.Sanitize(err.Error(), 4000))
	}
	return r
}

// credential decodes the ExecCredential on stdout.
func (r *run) credential(t *testing.T) (token string, exp time.Time) {
	t.Helper()
	var v struct {
		Kind, APIVersion string
		Status           struct {
			Token               string
			ExpirationTimestamp string
		}
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &v); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\nstdout: %q\nstderr: %s", err, r.stdout.String(), r.stderr.String())
	}
	if v.Kind != "ExecCredential" {
		t.Fatalf("kind %q", v.Kind)
	}
	if v.Status.ExpirationTimestamp != "" {
		var err error
		if exp, err = time.Parse(time.RFC3339, v.Status.ExpirationTimestamp); err != nil {
			t.Fatal(err)
		}
	}
	return v.Status.Token, exp
}

// noSecrets fails if any secret appears on stderr or in the error.
func (r *run) noSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(r.stderr.String(), s) || r.err != nil && strings.Contains(r.err.Error(), s) {
			t.Errorf("secret %q leaked: stderr %q, err %v", s, r.stderr.String(), r.err)
		}
	}
}

func TestPollSlowDownAddsFiveSecondsForEveryLaterPoll(t *testing.T) {
	s := newScript(t)
	s.Token(oauthErr("authorization_pending"), oauthErr("slow_down"), oauthErr("authorization_pending"), oauthErr("slow_down"), success("at-1", "rt-1", 3600))
	clock := newFakeClock()
	r := getToken(t, s.options(t, clock))
	if r.err != nil {
		t.Fatalf("GetToken: %v\n%s", r.err, r.stderr.String())
	}
	want := []time.Duration{1 * time.Second, 1 * time.Second, 6 * time.Second, 6 * time.Second, 11 * time.Second}
	if got := clock.Sleeps(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("waits between polls = %v, want %v", got, want)
	}
	if tok, _ := r.credential(t); tok != "at-1" {
		t.Errorf("token %q", tok)
	}
	if n := s.Count("token:" + deviceCodeGrant); n != 5 {
		t.Errorf("%d polls, want 5 (one request per poll)", n)
	}
	r.noSecrets(t, "at-1", "rt-1", "dc-secret")
}

func TestPollSurvivesServerErrorsAndDroppedConnections(t *testing.T) {
	s := newScript(t)
	s.Token(status(503), hangUp, status(500), func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
		w.Write([]byte("<html>bad gateway</html>"))
	}, oauthErr("authorization_pending"), success("at-2", "rt-2", 3600))
	clock := newFakeClock()
	r := getToken(t, s.options(t, clock))
	if r.err != nil {
		t.Fatalf("GetToken: %v\n%s", r.err, r.stderr.String())
	}
	// interval 1 s, then back-off doubling per failure, then the interval
	// again once the provider answers.
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 1 * time.Second}
	if got := clock.Sleeps(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("waits = %v, want %v", got, want)
	}
	if !strings.Contains(r.stderr.String(), "HTTP 503; retrying") {
		t.Errorf("stderr does not mention the failure: %s", r.stderr.String())
	}
	if strings.Contains(r.stderr.String(), "<html>") {
		t.Errorf("stderr quotes a response body: %s", r.stderr.String())
	}
}

func TestPollGarbageUntilTheCodeExpires(t *testing.T) {
	s := newScript(t)
	s.Token(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{\"access_token\": \x1b]0;owned\x07"))
	})
	clock := newFakeClock()
	start := clock.Now()
	r := getToken(t, s.options(t, clock))
	if r.err == nil || !strings.Contains(r.err.Error(), "code expired while the provider kept failing") || !strings.Contains(r.err.Error(), "not valid JSON") {
		t.Fatalf("err = %v", r.err)
	}
	if spent := clock.Now().Sub(start); spent > 61*time.Second {
		t.Errorf("polled for %s, beyond the code's 60 s", spent)
	}
	if strings.ContainsRune(r.stderr.String(), 0x1b) || strings.ContainsRune(r.err.Error(), 0x1b) {
		t.Errorf("escape sequence reached the terminal")
	}
}

func TestPollOversizeBodyIsNotAToken(t *testing.T) {
	s := newScript(t)
	big := `{"access_token":"` + strings.Repeat("A", 2<<20) + `","expires_in":3600}`
	s.Token(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(big))
	}, success("at-3", "", 3600))
	r := getToken(t, s.options(t, newFakeClock()))
	if r.err != nil {
		t.Fatalf("GetToken: %v", r.err)
	}
	if tok, _ := r.credential(t); tok != "at-3" {
		t.Errorf("token %.20q…, want the small one", tok)
	}
}

func TestPollHydraNeverSaysExpiredSoTheDeadlineIsLocal(t *testing.T) {
	s := newScript(t)
	s.Token(oauthErr("authorization_pending"))
	clock := newFakeClock()
	start := clock.Now()
	r := getToken(t, s.options(t, clock))
	if r.err == nil || !strings.Contains(r.err.Error(), "code expired before the sign-in was approved") {
		t.Fatalf("err = %v", r.err)
	}
	if spent := clock.Now().Sub(start); spent < 59*time.Second || spent > 61*time.Second {
		t.Errorf("gave up after %s, want the code's 60 s", spent)
	}
	if n := s.Count("token:" + deviceCodeGrant); n < 55 || n > 60 {
		t.Errorf("%d polls in 60 s at a 1 s interval", n)
	}
}

func TestPollFinalAnswers(t *testing.T) {
	for code, want := range map[string]string{
		"access_denied":  "denied",
		"expired_token":  "code expired",
		"invalid_client": "invalid_client (desc of invalid_client)",
	} {
		t.Run(code, func(t *testing.T) {
			s := newScript(t)
			s.Token(oauthErr("authorization_pending"), oauthErr(code))
			r := getToken(t, s.options(t, newFakeClock()))
			if r.err == nil || !strings.Contains(r.err.Error(), want) {
				t.Fatalf("err = %v, want it to mention %q", r.err, want)
			}
			if n := s.Count("token:" + deviceCodeGrant); n != 2 {
				t.Errorf("%d polls after a final answer", n)
			}
		})
	}
}

func TestTokenEndpointRedirectIsNotFollowed(t *testing.T) {
	s := newScript(t)
	s.Token(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	r := getToken(t, s.options(t, newFakeClock()))
	if r.err == nil || !strings.Contains(r.err.Error(), "redirect") {
		t.Fatalf("err = %v", r.err)
	}
	if n := s.Count("elsewhere"); n != 0 {
		t.Errorf("the device code was re-posted to the redirect target %d times", n)
	}
	r.noSecrets(t, "dc-secret", "stolen")
}

func TestDiscoveryMustNameTheSameIssuer(t *testing.T) {
	s := newScript(t)
	s.issuer = "https://evil.example"
	r := getToken(t, s.options(t, newFakeClock()))
	if r.err == nil || !strings.Contains(r.err.Error(), `calls itself "https://evil.example"`) {
		t.Fatalf("err = %v", r.err)
	}
	if s.Count("device") != 0 {
		t.Errorf("a device login started despite the mismatch")
	}
}

func TestTrailingSlashOnTheIssuerIsTheSameIssuer(t *testing.T) {
	s := newScript(t)
	s.issuer = s.srv.URL + "/"
	s.Token(success("at-4", "", 3600))
	o := s.options(t, newFakeClock())
	o.IssuerURL = s.srv.URL + "/"
	if r := getToken(t, o); r.err != nil {
		t.Fatalf("err = %v", r.err)
	}
}

func TestDeviceAuthorizationAnswersThatAreNotUsable(t *testing.T) {
	for name, tc := range map[string]struct {
		body map[string]any
		want string
	}{
		"missing user code": {map[string]any{"device_code": "d", "verification_uri": "https://x/v", "expires_in": 60}, "lacks"},
		"script URI":        {map[string]any{"device_code": "d", "user_code": "C", "verification_uri": "javascript:alert(1)", "expires_in": 60}, "not an http(s) URL"},
		"already expired":   {map[string]any{"device_code": "d", "user_code": "C", "verification_uri": "https://x/v", "expires_in": -5}, "expired as it was issued"},
	} {
		t.Run(name, func(t *testing.T) {
			s := newScript(t)
			s.device = func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, tc.body) }
			r := getToken(t, s.options(t, newFakeClock()))
			if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", r.err, tc.want)
			}
		})
	}
}

func TestServerStringsAreSanitizedOnTheTerminal(t *testing.T) {
	s := newScript(t)
	s.device = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{
			"device_code": "d", "user_code": "AB\x1b[2JCD\r\u202eEF\a",
			"verification_uri":          "https://x.example/v\u202e/live",
			"verification_uri_complete": "https://x.example/v?c=1" + strings.Repeat("x", 5000),
			"expires_in":                60, "interval": 1,
		})
	}
	s.Token(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, map[string]any{"error": "invalid_scope", "error_description": "no\x1b[31m red\r\n" + strings.Repeat("y", 5000)})
	})
	r := getToken(t, s.options(t, newFakeClock()))
	out := r.stderr.String() + r.err.Error()
	for _, bad := range []string{"\x1b", "\r", "\a", "\u202e"} {
		if strings.Contains(out, bad) {
			t.Errorf("stderr or error holds %q:\n%q", bad, out)
		}
	}
	if !strings.Contains(r.stderr.String(), "AB[2JCDEF") || !strings.Contains(r.stderr.String(), "https://x.example/v/live") {
		t.Errorf("user code not shown cleaned: %q", r.stderr.String())
	}
	if strings.Contains(r.stderr.String(), "xxxxx") {
		t.Errorf("an implausibly long complete URI was shown")
	}
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 600 {
			t.Errorf("a %d-byte line reached the terminal", len(line))
		}
	}
}

func TestConfidentialClientSendsItsSecretButNeverShowsIt(t *testing.T) {
	for _, tc := range []struct {
		auth      string
		basic     bool // HTTP Basic (RFC 6749 §2.3.1), else the body
		discovery []string
	}{
		{auth: "", basic: true},
		{auth: "basic", basic: true},
		{auth: "post", basic: false},
		{auth: "", basic: false, discovery: []string{"client_secret_post", "private_key_jwt"}},
	} {
		t.Run(fmt.Sprintf("client-auth=%q, discovery %v", tc.auth, tc.discovery), func(t *testing.T) {
			s := newScript(t)
			s.methods = tc.discovery
			s.Token(oauthErr("authorization_pending"), success("at-5", "rt-5", 3600))
			o := s.options(t, newFakeClock())
			o.ClientSecret = "s3cret/value+1"
			o.ClientAuth = tc.auth
			o.ExtraParams = []string{"audience=kubernetes"}
			r := getTokenVerbose(t, o, true)
			if r.err != nil {
				t.Fatal(r.err)
			}
			s.mu.Lock()
			forms, auths := s.forms, s.auths
			s.mu.Unlock()
			if got := forms[0]; got.Get("audience") != "kubernetes" || got.Get("scope") != "offline_access openid" {
				t.Errorf("device authorization form = %v", got)
			}
			for i, f := range forms {
				// Basic credentials are form-encoded first (RFC 6749 §2.3.1).
				inHeader := auths[i] == "kubectl:s3cret%2Fvalue%2B1"
				inBody := f.Get("client_secret") == "s3cret/value+1" && f.Get("client_id") == "kubectl"
				if inHeader != tc.basic || inBody == tc.basic {
					t.Errorf("request %d: secret in the header %t, in the body %t; want Basic %t", i, inHeader, inBody, tc.basic)
				}
			}
			r.noSecrets(t, "s3cret/value+1", "s3cret%2Fvalue%2B1", "at-5", "rt-5", "dc-secret")
		})
	}
}

// seed writes a session for the script's issuer into the cache.
func seed(t *testing.T, o Options, e cache.Entry) {
	t.Helper()
	s, err := Resolve(o)
	if err != nil {
		t.Fatal(err)
	}
	e.Key = s.Key
	if err := (cache.Store{Dir: s.CacheDir}).Save(&e); err != nil {
		t.Fatal(err)
	}
}

// stored is the session file of these options.
func stored(t *testing.T, o Options) (cache.Store, cache.Key) {
	t.Helper()
	s, err := Resolve(o)
	if err != nil {
		t.Fatal(err)
	}
	return cache.Store{Dir: s.CacheDir}, s.Key
}

func TestRefreshIsOneRequestAndPersistsTheRotatedToken(t *testing.T) {
	s := newScript(t)
	s.Token(func(w http.ResponseWriter, r *http.Request) {
		if r.PostForm.Get("refresh_token") != "rt-old" || r.PostForm.Get("grant_type") != "refresh_token" {
			t.Errorf("refresh form %v", r.PostForm)
		}
		success("at-new", "rt-new", 600)(w, r)
	})
	clock := newFakeClock()
	o := s.options(t, clock)
	o.DeviceLogin = DeviceLoginNever
	seed(t, o, cache.Entry{TokenEndpoint: s.srv.URL + "/token", AccessToken: "at-old", RefreshToken: "rt-old",
		IssuedAt: clock.Now().Add(-time.Hour), Expiry: clock.Now().Add(-time.Minute)})
	r := getToken(t, o)
	if r.err != nil {
		t.Fatal(r.err)
	}
	tok, exp := r.credential(t)
	if tok != "at-new" {
		t.Errorf("token %q", tok)
	}
	if want := clock.Now().Add(9 * time.Minute).Truncate(time.Second); !exp.Equal(want) {
		t.Errorf("expirationTimestamp %s, want expiry minus the 1 min margin, %s", exp, want)
	}
	if s.Count("discovery") != 0 || s.Count("token:refresh_token") != 1 {
		t.Errorf("requests: %v", s.counts)
	}
	store, key := stored(t, o)
	e, err := store.Load(key)
	if err != nil || e.RefreshToken != "rt-new" || e.AccessToken != "at-new" {
		t.Errorf("cache after refresh: %+v, %v", e, err)
	}
	r.noSecrets(t, "at-new", "rt-new", "rt-old", "at-old")
}

func TestRefreshFailureServesTheStillValidToken(t *testing.T) {
	s := newScript(t)
	s.Token(status(503))
	clock := newFakeClock()
	o := s.options(t, clock)
	o.DeviceLogin = DeviceLoginNever
	seed(t, o, cache.Entry{TokenEndpoint: s.srv.URL + "/token", AccessToken: "at-old", RefreshToken: "rt-old",
		IssuedAt: clock.Now().Add(-time.Hour), Expiry: clock.Now().Add(30 * time.Second)})
	r := getToken(t, o)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if tok, exp := r.credential(t); tok != "at-old" || !exp.After(clock.Now()) {
		t.Errorf("token %q, expiry %s", tok, exp)
	}
	if !strings.Contains(r.stderr.String(), "could not refresh the session (the provider answered HTTP 503)") {
		t.Errorf("stderr: %s", r.stderr.String())
	}
}

func TestRefreshFailureWithNothingValidLeavesTheCacheAlone(t *testing.T) {
	s := newScript(t)
	s.Token(status(502))
	clock := newFakeClock()
	o := s.options(t, clock)
	seed(t, o, cache.Entry{TokenEndpoint: s.srv.URL + "/token", AccessToken: "at-old", RefreshToken: "rt-old",
		IssuedAt: clock.Now().Add(-time.Hour), Expiry: clock.Now().Add(-time.Second)})
	store, key := stored(t, o)
	before, _ := os.ReadFile(store.Path(key.ID()))
	r := getToken(t, o)
	if r.err == nil || !strings.Contains(r.err.Error(), "could not refresh the session: the provider answered HTTP 502; try again") {
		t.Fatalf("err = %v", r.err)
	}
	after, _ := os.ReadFile(store.Path(key.ID()))
	if !bytes.Equal(before, after) {
		t.Errorf("the cache file changed")
	}
	if s.Count("device") != 0 {
		t.Errorf("a device login started while the provider is failing")
	}
}

func TestInvalidGrantMeansSignInAgain(t *testing.T) {
	s := newScript(t)
	s.Token(oauthErr("invalid_grant"), success("at-fresh", "rt-fresh", 3600))
	clock := newFakeClock()
	o := s.options(t, clock)
	seed(t, o, cache.Entry{TokenEndpoint: s.srv.URL + "/token", AccessToken: "at-old", RefreshToken: "rt-old",
		IssuedAt: clock.Now().Add(-time.Hour), Expiry: clock.Now().Add(-time.Second)})
	r := getToken(t, o)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if tok, _ := r.credential(t); tok != "at-fresh" {
		t.Errorf("token %q", tok)
	}
	if s.Count("device") != 1 || !strings.Contains(r.stderr.String(), "no longer accepts the session's refresh token (the provider answered invalid_grant") {
		t.Errorf("counts %v, stderr %s", s.counts, r.stderr.String())
	}
}

// TestRefreshFindsTheTokenEndpointAlone: a session saved without its
// token endpoint is refreshed at the one discovery names, and a refresh
// does not need the device authorization endpoint, which discovery may
// leave out (the device flow turned off at the provider, or never on for
// the client).
func TestRefreshFindsTheTokenEndpointAlone(t *testing.T) {
	s := newScript(t)
	s.noDeviceEndpoint = true
	s.Token(success("at-new", "rt-new", 600))
	clock := newFakeClock()
	o := s.options(t, clock)
	o.DeviceLogin = DeviceLoginNever
	seed(t, o, cache.Entry{AccessToken: "at-old", RefreshToken: "rt-old",
		IssuedAt: clock.Now().Add(-time.Hour), Expiry: clock.Now().Add(-time.Minute)})
	r := getToken(t, o)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if tok, _ := r.credential(t); tok != "at-new" || s.Count("token:refresh_token") != 1 {
		t.Errorf("token %q, requests %v", tok, s.counts)
	}
	store, key := stored(t, o)
	if e, err := store.Load(key); err != nil || e.RefreshToken != "rt-new" || e.TokenEndpoint != s.srv.URL+"/token" {
		t.Errorf("cache after refresh: %+v, %v", e, err)
	}
}

func TestAbsurdExpiriesAreHandled(t *testing.T) {
	for name, tc := range map[string]struct {
		expiresIn int
		refresh   string
		// wantSpan is expirationTimestamp - now, roughly; 0 means no
		// timestamp, or none in the future.
		wantSpan time.Duration
		note     string
	}{
		"a century":                  {100 * 365 * 24 * 3600, "", maxLifetime, ""},
		"a century, refreshable":     {100 * 365 * 24 * 3600, "rt", maxLifetime - time.Minute, ""},
		"max int64-ish":              {1 << 62, "", maxLifetime, ""},
		"no expires_in":              {noExpiresIn, "", unknownLifetime, ""},
		"no expires_in, refreshable": {noExpiresIn, "rt", unknownLifetime - time.Minute, ""},
		"expires_in 0":               {0, "rt", 0, "has no lifetime left"},
		"expires_in below 0":         {-5, "rt", 0, "has no lifetime left"},
		"one second left":            {1, "rt", 0, ""}, // margin capped at half: timestamp dropped when not in the future
	} {
		t.Run(name, func(t *testing.T) {
			s := newScript(t)
			s.Token(success("at-x", tc.refresh, tc.expiresIn))
			clock := newFakeClock()
			r := getToken(t, s.options(t, clock))
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !strings.Contains(r.stderr.String(), tc.note) {
				t.Errorf("stderr lacks %q:\n%s", tc.note, r.stderr.String())
			}
			_, exp := r.credential(t)
			if tc.wantSpan == 0 {
				if !exp.IsZero() && !exp.After(clock.Now()) {
					t.Errorf("expirationTimestamp %s is not in the future", exp)
				}
				return
			}
			if d := exp.Sub(clock.Now()) - tc.wantSpan; d < -2*time.Second || d > 2*time.Second {
				t.Errorf("expirationTimestamp in %s, want about %s", exp.Sub(clock.Now()), tc.wantSpan)
			}
		})
	}
}

func TestClockThatWentBackRenewsTheSession(t *testing.T) {
	s := newScript(t)
	s.Token(success("at-new", "rt-new", 3600))
	clock := newFakeClock()
	o := s.options(t, clock)
	o.DeviceLogin = DeviceLoginNever
	// Issued "tomorrow", valid for years: the clock went back a day.
	seed(t, o, cache.Entry{TokenEndpoint: s.srv.URL + "/token", AccessToken: "at-old", RefreshToken: "rt-old",
		IssuedAt: clock.Now().Add(24 * time.Hour), Expiry: clock.Now().Add(5 * 365 * 24 * time.Hour)})
	r := getToken(t, o)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if tok, _ := r.credential(t); tok != "at-new" || s.Count("token:refresh_token") != 1 {
		t.Errorf("token %q after %d refreshes; want the session renewed", tok, s.Count("token:refresh_token"))
	}
}

// TestRedirectsNeverLeaveHTTPS (issue 12, defect 6): an https issuer's
// discovery and device authorization requests follow redirects only to
// URLs that pass the same rule as the flags (https, or http on loopback);
// a redirect to plain http elsewhere is refused before any connection.
// (A scripted TLS server: a real provider cannot be made to redirect.)
func TestRedirectsNeverLeaveHTTPS(t *testing.T) {
	for _, tc := range []struct {
		name, path, target string
		followed           bool
	}{
		{"discovery to http elsewhere", "/.well-known/openid-configuration", "http://evil.example/.well-known/openid-configuration", false},
		{"device authorization to http elsewhere", "/device", "http://evil.example/device", false},
		{"discovery within the issuer", "/.well-known/openid-configuration", "/moved/openid-configuration", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httptest.Server
			mux := http.NewServeMux()
			discovery := func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, map[string]any{"issuer": srv.URL, "device_authorization_endpoint": srv.URL + "/device", "token_endpoint": srv.URL + "/token"})
			}
			mux.HandleFunc("/.well-known/openid-configuration", discovery)
			mux.HandleFunc("/moved/openid-configuration", discovery)
			mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, map[string]any{"device_code": "dc", "user_code": "CODE", "verification_uri": srv.URL + "/verify", "expires_in": 60, "interval": 1})
			})
			mux.HandleFunc("/token", success("at-r", "", 3600))
			redirecting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == tc.path {
					http.Redirect(w, r, tc.target, http.StatusTemporaryRedirect)
					return
				}
				mux.ServeHTTP(w, r)
			})
			srv = httptest.NewTLSServer(redirecting)
			defer srv.Close()
			o := Options{IssuerURL: srv.URL, ClientID: "kubectl", CacheDir: filepath.Join(t.TempDir(), "cache"),
				DeviceLogin: DeviceLoginAlways, Clock: newFakeClock(), HTTPClient: srv.Client()}
			r := getToken(t, o)
			switch {
			case tc.followed && r.err != nil:
				t.Fatalf("a redirect within the issuer was not followed: %v", r.err)
			case !tc.followed && (r.err == nil || !strings.Contains(r.err.Error(), "not followed") || !strings.Contains(r.err.Error(), "plain http")):
				t.Fatalf("err = %v, want the redirect refused for plain http", r.err)
			}
		})
	}
}

// TestEndpointsOnAnotherOriginNeedTheFlag (issue 14, a suspicion): a
// discovery document (which a cluster extension's issuer controls) that
// names device authorization or token endpoints on another origin could
// hand the device code to someone else; such endpoints are refused unless
// --allow-cross-origin-endpoints says the provider is set up that way.
func TestEndpointsOnAnotherOriginNeedTheFlag(t *testing.T) {
	other := newScript(t)
	other.Token(success("at-elsewhere", "", 3600))
	s := newScript(t)
	s.tokenEndpoint = other.srv.URL + "/token"
	o := s.options(t, newFakeClock())
	o.RememberFailure = -1
	r := getToken(t, o)
	if r.err == nil || !strings.Contains(r.err.Error(), "--allow-cross-origin-endpoints") || s.Count("device") != 0 {
		t.Fatalf("err = %v; device requests %d", r.err, s.Count("device"))
	}
	o.AllowCrossOriginEndpoints = true
	if r := getToken(t, o); r.err != nil {
		t.Fatalf("with the flag: %v", r.err)
	}
}
