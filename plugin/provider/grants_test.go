package provider

// Protocol corners of PKCE and client authentication that the providers
// the tests start cannot show, on small httptest servers: a refusal for
// want of PKCE in the words of Keycloak, RFC 7636 and fosite; Ory Hydra's
// refusal of a secret sent the other way than registered; a discovery
// document that rules out client_secret_basic; expires_in as a string.
// (Both test providers ignore PKCE on the device flow and take either
// client authentication method; plugin/grants_test.go runs the binary
// against them.)

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
	"golang.org/x/oauth2"
)

// fakeProvider is a discovery document, a device authorization endpoint
// and a token endpoint, each answering with a function of the request.
type fakeProvider struct {
	srv        *httptest.Server
	authMethod []string
	device     func(form url.Values, r *http.Request) (int, any)
	token      func(form url.Values, r *http.Request) (int, any)

	mu       sync.Mutex
	requests []recorded
}

// recorded is one request to the device authorization or token endpoint.
type recorded struct {
	path  string
	form  url.Values
	basic bool
}

func newFakeProvider(t *testing.T) *fakeProvider {
	f := &fakeProvider{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/openid-configuration" {
			writeJSON(w, 200, map[string]any{
				"issuer":                                f.srv.URL,
				"device_authorization_endpoint":         f.srv.URL + "/device",
				"token_endpoint":                        f.srv.URL + "/token",
				"token_endpoint_auth_methods_supported": f.authMethod,
				"code_challenge_methods_supported":      []string{"plain", "S256"},
			})
			return
		}
		r.ParseForm()
		_, _, basic := r.BasicAuth()
		f.mu.Lock()
		f.requests = append(f.requests, recorded{r.URL.Path, r.PostForm, basic})
		f.mu.Unlock()
		var status int
		var body any
		switch r.URL.Path {
		case "/device":
			status, body = f.device(r.PostForm, r)
		case "/token":
			status, body = f.token(r.PostForm, r)
		default:
			status, body = 404, map[string]string{"error": "not_found"}
		}
		writeJSON(w, status, body)
	}))
	t.Cleanup(f.srv.Close)
	f.device = func(url.Values, *http.Request) (int, any) { return 200, deviceAnswer() }
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func deviceAnswer() map[string]any {
	return map[string]any{"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": "https://example.test/device", "expires_in": 600, "interval": 1}
}

func (f *fakeProvider) client(pkce, secret, auth string) *Client {
	return &Client{Issuer: f.srv.URL, ClientID: "kubectl", ClientSecret: secret, ClientAuth: auth, PKCE: pkce, HTTP: f.srv.Client(), Clock: fixedClock{fuzzNow()}}
}

func (f *fakeProvider) sent(path string) []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []recorded
	for _, r := range f.requests {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// requirePKCE answers a device authorization request without a challenge
// as a provider that requires PKCE does, in its words.
func requirePKCE(description string) func(url.Values, *http.Request) (int, any) {
	return func(form url.Values, _ *http.Request) (int, any) {
		if form.Get("code_challenge") == "" {
			return 400, map[string]string{"error": "invalid_request", "error_description": description}
		}
		return 200, deviceAnswer()
	}
}

func TestRequiresPKCE(t *testing.T) {
	for _, c := range []struct {
		code, description string
		want              bool
	}{
		{"invalid_request", "Missing parameter: code_challenge_method", true},                                                          // Keycloak
		{"invalid_request", "code challenge required", true},                                                                           // RFC 7636 §4.4.1's example
		{"invalid_request", "Clients must include a code_challenge when performing the authorize code flow, but it is missing.", true}, // fosite
		{"invalid_request", "PKCE is required for this client", true},
		{"invalid_request", "Proof Key for Code Exchange is required", true},
		{"invalid_request", "scope profile is not allowed", false},
		{"invalid_request", "", false},
		{"invalid_client", "PKCE is required", false},
		{"invalid_scope", "code_challenge", false},
	} {
		err := fmt.Errorf("wrapped: %w", &OAuthError{Code: c.code, Description: c.description})
		if got := requiresPKCE(err); got != c.want {
			t.Errorf("requiresPKCE(%s %q) = %t, want %t", c.code, c.description, got, c.want)
		}
	}
	if requiresPKCE(&httpError{Status: 400}) {
		t.Error("requiresPKCE of an answer without an OAuth error")
	}
}

func TestPKCEAutoOnlyWhenRequired(t *testing.T) {
	ctx := context.Background()

	// A provider that takes a device authorization request without PKCE
	// (every provider the tests start, and Ory Hydra) never sees a
	// challenge from auto, whatever its discovery advertises.
	f := newFakeProvider(t)
	d, err := f.client(PKCEAuto, "", "").StartDeviceLogin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sent := f.sent("/device"); len(sent) != 1 || sent[0].form.Has("code_challenge") || d.verifier != "" {
		t.Errorf("auto against a provider that does not require PKCE sent %+v", sent)
	}

	// One that requires it gets the request once more, with a challenge,
	// and the verifier when polled.
	for _, words := range []string{"Missing parameter: code_challenge_method", "code challenge required"} {
		f := newFakeProvider(t)
		f.device = requirePKCE(words)
		var verifier string
		f.token = func(form url.Values, _ *http.Request) (int, any) {
			verifier = form.Get("code_verifier")
			return 200, map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 60}
		}
		c := f.client(PKCEAuto, "", "")
		d, err := c.StartDeviceLogin(ctx)
		if err != nil {
			t.Fatalf("%q: %v", words, err)
		}
		sent := f.sent("/device")
		if len(sent) != 2 || sent[0].form.Has("code_challenge") || sent[1].form.Get("code_challenge_method") != "S256" {
			t.Fatalf("%q: device authorization requests %+v, want one without and one with an S256 challenge", words, sent)
		}
		if _, err := c.Poll(ctx, d, terminal.New(io.Discard, terminal.Options{})); err != nil {
			t.Fatalf("%q: poll: %v", words, err)
		}
		if oauth2.S256ChallengeFromVerifier(verifier) != sent[1].form.Get("code_challenge") {
			t.Errorf("%q: the code_verifier polled does not match the challenge sent", words)
		}
	}

	// Another refusal is not retried.
	f = newFakeProvider(t)
	f.device = func(url.Values, *http.Request) (int, any) {
		return 400, map[string]string{"error": "invalid_request", "error_description": "unknown scope"}
	}
	if _, err := f.client(PKCEAuto, "", "").StartDeviceLogin(ctx); err == nil || len(f.sent("/device")) != 1 {
		t.Errorf("a refusal for another reason: %v after %d requests, want an error after one", err, len(f.sent("/device")))
	}

	// never does not retry, and says what to change; always sends the
	// challenge the first time.
	f = newFakeProvider(t)
	f.device = requirePKCE("Missing parameter: code_challenge_method")
	_, err = f.client(PKCENever, "", "").StartDeviceLogin(ctx)
	if err == nil || !strings.Contains(err.Error(), "leave out --pkce=never") || len(f.sent("/device")) != 1 {
		t.Errorf("never: %v after %d requests, want one refused request and the flag to change", err, len(f.sent("/device")))
	}
	f = newFakeProvider(t)
	f.device = requirePKCE("Missing parameter: code_challenge_method")
	if _, err := f.client(PKCEAlways, "", "").StartDeviceLogin(ctx); err != nil || len(f.sent("/device")) != 1 {
		t.Errorf("always: %v after %d requests, want one accepted request", err, len(f.sent("/device")))
	}
}

func TestClientAuthStyle(t *testing.T) {
	ctx := context.Background()
	ccAnswer := func(url.Values, *http.Request) (int, any) {
		return 200, map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": "120"}
	}
	for _, c := range []struct {
		name      string
		discovery []string
		flag      string
		wantBasic bool
	}{
		{"both listed", []string{"client_secret_post", "client_secret_basic"}, "", true},
		{"none listed", nil, "", true},
		{"post only", []string{"client_secret_post", "private_key_jwt"}, "", false},
		{"post only, --client-auth=basic", []string{"client_secret_post"}, AuthBasic, true},
		{"both, --client-auth=post", []string{"client_secret_post", "client_secret_basic"}, AuthPost, false},
	} {
		f := newFakeProvider(t)
		f.authMethod = c.discovery
		f.token = ccAnswer
		tok, err := f.client(PKCEAuto, "s3cret", c.flag).ClientCredentials(ctx)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		sent := f.sent("/token")
		if len(sent) != 1 {
			t.Fatalf("%s: %d token requests", c.name, len(sent))
		}
		inBody := sent[0].form.Get("client_secret") == "s3cret"
		if sent[0].basic != c.wantBasic || inBody == c.wantBasic {
			t.Errorf("%s: Basic %t, secret in the body %t; want Basic %t", c.name, sent[0].basic, inBody, c.wantBasic)
		}
		// expires_in as a string, which some providers send, counts.
		if !tok.HasExpiresIn || tok.ExpiresIn != 120*time.Second {
			t.Errorf("%s: expires_in %v (stated %t), want 2m", c.name, tok.ExpiresIn, tok.HasExpiresIn)
		}
	}

	// A public client sends only its client_id.
	f := newFakeProvider(t)
	f.token = ccAnswer
	d, _ := f.client(PKCENever, "", "").StartDeviceLogin(ctx)
	f.client(PKCENever, "", "").Poll(ctx, d, terminal.New(io.Discard, terminal.Options{}))
	for _, r := range append(f.sent("/device"), f.sent("/token")...) {
		if r.basic || r.form.Has("client_secret") || r.form.Get("client_id") != "kubectl" {
			t.Errorf("public client at %s: Basic %t, form %v", r.path, r.basic, r.form)
		}
	}
}

func TestHydraRefusesTheOtherMethod(t *testing.T) {
	// Ory Hydra v26.2.0's answer to a secret in the body from a client
	// registered with its default, client_secret_basic (field notes).
	hydra := func(registered string) func(url.Values, *http.Request) (int, any) {
		return func(form url.Values, r *http.Request) (int, any) {
			_, _, basic := r.BasicAuth()
			used := "client_secret_post"
			if basic {
				used = "client_secret_basic"
			}
			if used != registered {
				return 401, map[string]string{"error": "invalid_client", "error_description": fmt.Sprintf("Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method). The OAuth 2.0 Client supports client authentication method '%s', but method '%s' was requested. You must configure the OAuth 2.0 client's 'token_endpoint_auth_method' value to accept '%s'.", registered, used, used)}
			}
			return 200, deviceAnswer()
		}
	}
	ctx := context.Background()
	for _, c := range []struct {
		registered, flag, want string
	}{
		{"client_secret_basic", AuthPost, "leave out --client-auth=post"},
		{"client_secret_post", "", "pass --client-auth=post"},
	} {
		f := newFakeProvider(t)
		f.authMethod = []string{"client_secret_post", "client_secret_basic", "private_key_jwt", "none"}
		f.device = hydra(c.registered)
		_, err := f.client(PKCEAuto, "s3cret", c.flag).StartDeviceLogin(ctx)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("registered %s, --client-auth=%q: %v; want the advice %q", c.registered, c.flag, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "--scope") {
			t.Errorf("the advice for a refused client authentication talks of scopes: %v", err)
		}
	}
}
