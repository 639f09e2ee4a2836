package providertest

// The clients Options add, against both providers: confidential clients
// (client_secret_basic and client_secret_post) on the device flow and at
// refresh, the client credentials client, the client that must use PKCE,
// and what each provider does with PKCE and with either way of sending a
// secret when nothing makes it strict.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

var bothProviders = []struct {
	name  string
	start func(testing.TB, Options) Provider
}{
	{"oidc-provider", StartNode},
	{"zitadel", StartZitadel},
}

const clientsTestSecret = "test-secret-2f8c1d"

// endpoints reads the provider's discovery document.
type clientsTestEnv struct {
	p   Provider
	hc  *http.Client
	doc struct {
		DeviceAuthorization string   `json:"device_authorization_endpoint"`
		Token               string   `json:"token_endpoint"`
		Revocation          string   `json:"revocation_endpoint"`
		JWKS                string   `json:"jwks_uri"`
		AuthMethods         []string `json:"token_endpoint_auth_methods_supported"`
		ChallengeMethods    []string `json:"code_challenge_methods_supported"`
		GrantTypes          []string `json:"grant_types_supported"`
	}
}

func newClientsTestEnv(t *testing.T, p Provider) *clientsTestEnv {
	t.Helper()
	e := &clientsTestEnv{p: p, hc: &http.Client{Timeout: 30 * time.Second}}
	resp, err := e.hc.Get(p.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&e.doc); err != nil {
		t.Fatal(err)
	}
	return e
}

// how a request authenticates the client.
type clientAuth int

const (
	authNone  clientAuth = iota // client_id in the form only
	authBasic                   // HTTP Basic
	authPost                    // client_id and client_secret in the form
)

// post sends a form to u as client id with secret, and decodes the JSON
// answer.
func (e *clientsTestEnv) post(t *testing.T, u, id, secret string, how clientAuth, form url.Values) (int, map[string]any) {
	t.Helper()
	form = cloneValues(form)
	switch how {
	case authNone:
		form.Set("client_id", id)
	case authPost:
		form.Set("client_id", id)
		form.Set("client_secret", secret)
	}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if how == authBasic {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 && json.Unmarshal(body, &m) != nil {
		t.Fatalf("POST %s: %s: not JSON: %s", u, resp.Status, body)
	}
	return resp.StatusCode, m
}

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// deviceLogin starts a device authorization, approves it, and polls once
// approved with the given extra token parameters; it returns the token
// answer.
func (e *clientsTestEnv) deviceLogin(t *testing.T, id, secret string, how clientAuth, authForm, tokenForm url.Values) (int, map[string]any) {
	t.Helper()
	if authForm == nil {
		authForm = url.Values{}
	}
	authForm.Set("scope", "openid offline_access")
	status, da := e.post(t, e.doc.DeviceAuthorization, id, secret, how, authForm)
	if status != http.StatusOK {
		t.Fatalf("device authorization as %s: %d %v", id, status, da)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.p.Approve(ctx, da["user_code"].(string)); err != nil {
		t.Fatalf("approve: %v", err)
	}
	form := cloneValues(tokenForm)
	form.Set("grant_type", "urn:ietf:params:oauth:grant-type:device_code")
	form.Set("device_code", da["device_code"].(string))
	return e.post(t, e.doc.Token, id, secret, how, form)
}

func TestClientsConfidentialDeviceFlow(t *testing.T) {
	for _, pv := range bothProviders {
		t.Run(pv.name, func(t *testing.T) {
			t.Parallel()
			p := pv.start(t, Options{ClientSecret: clientsTestSecret})
			e := newClientsTestEnv(t, p)
			for _, m := range []string{"client_secret_basic", "client_secret_post"} {
				if !slices.Contains(e.doc.AuthMethods, m) {
					t.Errorf("discovery's token_endpoint_auth_methods_supported %v lacks %s", e.doc.AuthMethods, m)
				}
			}
			for _, c := range []struct {
				id  string
				how clientAuth
			}{
				{BasicClientID, authBasic}, {PostClientID, authPost},
				// Either provider takes the other method too, by itself.
				{BasicClientID, authPost}, {PostClientID, authBasic},
			} {
				status, tok := e.deviceLogin(t, c.id, clientsTestSecret, c.how, nil, nil)
				if status != http.StatusOK || tok["access_token"] == nil || tok["refresh_token"] == nil {
					t.Fatalf("%s (auth %d): token answer %d %v", c.id, c.how, status, tok)
				}
				status, ref := e.post(t, e.doc.Token, c.id, clientsTestSecret, c.how, url.Values{
					"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)},
				})
				if status != http.StatusOK || ref["access_token"] == nil {
					t.Errorf("%s (auth %d): refresh %d %v", c.id, c.how, status, ref)
				}
				status, rev := e.post(t, e.doc.Revocation, c.id, clientsTestSecret, c.how, url.Values{
					"token": {ref["refresh_token"].(string)}, "token_type_hint": {"refresh_token"},
				})
				if status != http.StatusOK {
					t.Errorf("%s (auth %d): revocation %d %v", c.id, c.how, status, rev)
				}
			}
			// A wrong secret, or none, is refused.
			for _, how := range []clientAuth{authBasic, authPost} {
				status, ans := e.post(t, e.doc.DeviceAuthorization, BasicClientID, "wrong", how, url.Values{"scope": {"openid"}})
				if status < 400 || ans["error"] != "invalid_client" {
					t.Errorf("wrong secret (auth %d): %d %v, want invalid_client", how, status, ans)
				}
			}
			status, ans := e.post(t, e.doc.DeviceAuthorization, BasicClientID, "", authNone, url.Values{"scope": {"openid"}})
			if status < 400 || ans["error"] == nil {
				t.Errorf("no secret: %d %v, want an error", status, ans)
			}
			c, _ := p.Counts(context.Background())
			if c.DeviceAuthorization != 7 || c.DeviceCodeGrant != 4 || c.RefreshTokenGrant != 4 || c.Revocation != 4 {
				t.Errorf("counts %+v, want 7 device authorizations, 4 device code grants, 4 refreshes, 4 revocations", c)
			}
		})
	}
}

func TestClientsStrictClientAuth(t *testing.T) {
	for _, pv := range bothProviders {
		t.Run(pv.name, func(t *testing.T) {
			t.Parallel()
			p := pv.start(t, Options{ClientSecret: clientsTestSecret, StrictClientAuth: true})
			e := newClientsTestEnv(t, p)
			for _, c := range []struct {
				id       string
				how      clientAuth
				u        string
				form     url.Values
				wantFail bool
			}{
				{BasicClientID, authPost, e.doc.DeviceAuthorization, url.Values{"scope": {"openid"}}, true},
				{PostClientID, authBasic, e.doc.DeviceAuthorization, url.Values{"scope": {"openid"}}, true},
				{CIClientID, authPost, e.doc.Token, url.Values{"grant_type": {"client_credentials"}}, true},
				{BasicClientID, authPost, e.doc.Revocation, url.Values{"token": {"x"}}, true},
				{BasicClientID, authBasic, e.doc.DeviceAuthorization, url.Values{"scope": {"openid"}}, false},
				{PostClientID, authPost, e.doc.DeviceAuthorization, url.Values{"scope": {"openid"}}, false},
				{CIClientID, authBasic, e.doc.Token, url.Values{"grant_type": {"client_credentials"}}, false},
			} {
				status, ans := e.post(t, c.u, c.id, clientsTestSecret, c.how, c.form)
				if !c.wantFail {
					if status != http.StatusOK {
						t.Errorf("%s (auth %d) at %s: %d %v, want 200", c.id, c.how, c.u, status, ans)
					}
					continue
				}
				desc, _ := ans["error_description"].(string)
				if status != http.StatusUnauthorized && status != http.StatusBadRequest || ans["error"] != "invalid_client" ||
					!strings.Contains(desc, "supports client authentication method") {
					t.Errorf("%s (auth %d) at %s: %d %v, want invalid_client naming the registered method", c.id, c.how, c.u, status, ans)
				}
			}
		})
	}
}

func TestClientsClientCredentials(t *testing.T) {
	const aud = "https://kubernetes.test"
	for _, pv := range bothProviders {
		t.Run(pv.name, func(t *testing.T) {
			t.Parallel()
			p := pv.start(t, Options{ClientSecret: clientsTestSecret, Audience: aud, AccessTokenTTL: 30 * time.Second})
			e := newClientsTestEnv(t, p)
			if !slices.Contains(e.doc.GrantTypes, "client_credentials") {
				t.Errorf("discovery's grant_types_supported %v lacks client_credentials", e.doc.GrantTypes)
			}
			grant := url.Values{"grant_type": {"client_credentials"}}
			for _, how := range []clientAuth{authBasic, authPost} {
				status, tok := e.post(t, e.doc.Token, CIClientID, clientsTestSecret, how, grant)
				if status != http.StatusOK || tok["access_token"] == nil || tok["refresh_token"] != nil || tok["id_token"] != nil {
					t.Fatalf("client credentials (auth %d): %d %v, want an access token only", how, status, tok)
				}
				if tok["expires_in"] != float64(30) {
					t.Errorf("expires_in %v, want 30 (Options.AccessTokenTTL)", tok["expires_in"])
				}
				if strings.Count(tok["access_token"].(string), ".") == 2 {
					t.Errorf("access token without an audience is a JWT; want opaque")
				}
			}
			for _, param := range []string{"audience", "resource"} {
				form := cloneValues(grant)
				form.Set(param, aud)
				status, tok := e.post(t, e.doc.Token, CIClientID, clientsTestSecret, authBasic, form)
				if status != http.StatusOK {
					t.Fatalf("%s=%s: %d %v", param, aud, status, tok)
				}
				claims := jwtClaims(t, tok["access_token"].(string))
				if audOf(claims) != aud || claims["sub"] != CIClientID || claims["iss"] != p.Issuer() {
					t.Errorf("%s=%s: access token claims %v, want aud %s and sub %s", param, aud, claims, aud, CIClientID)
				}
			}
			form := cloneValues(grant)
			form.Set("audience", "https://other.test")
			if status, ans := e.post(t, e.doc.Token, CIClientID, clientsTestSecret, authBasic, form); status != http.StatusBadRequest || ans["error"] != "invalid_target" {
				t.Errorf("another audience: %d %v, want invalid_target", status, ans)
			}
			if status, ans := e.post(t, e.doc.Token, CIClientID, "wrong", authBasic, grant); status < 400 || ans["error"] != "invalid_client" {
				t.Errorf("wrong secret: %d %v, want invalid_client", status, ans)
			}
			// The CI client may not use the device flow, nor the public
			// client the client credentials grant.
			if status, ans := e.post(t, e.doc.DeviceAuthorization, CIClientID, clientsTestSecret, authBasic, url.Values{"scope": {"openid"}}); status < 400 {
				t.Errorf("device authorization as the CI client: %d %v, want an error", status, ans)
			}
			if status, ans := e.post(t, e.doc.Token, p.ClientID(), "", authNone, grant); status < 400 {
				t.Errorf("client credentials as the public client: %d %v, want an error", status, ans)
			}
			c, _ := p.Counts(context.Background())
			if c.ClientCredentialsGrant != 7 {
				t.Errorf("counted %d client credentials grants, want 7", c.ClientCredentialsGrant)
			}
		})
	}
}

func TestClientsPKCE(t *testing.T) {
	verifier := oauth2.GenerateVerifier()
	challenge := url.Values{"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	withVerifier := func(v string) url.Values { return url.Values{"code_verifier": {v}} }
	for _, pv := range bothProviders {
		t.Run(pv.name, func(t *testing.T) {
			t.Parallel()
			p := pv.start(t, Options{PKCEClient: true})
			e := newClientsTestEnv(t, p)
			if !slices.Contains(e.doc.ChallengeMethods, "S256") {
				t.Errorf("discovery's code_challenge_methods_supported %v lacks S256", e.doc.ChallengeMethods)
			}

			// The public client: a challenge is taken and then ignored,
			// with or without a verifier, right or wrong.
			for _, tokenForm := range []url.Values{nil, withVerifier(verifier), withVerifier(oauth2.GenerateVerifier())} {
				status, tok := e.deviceLogin(t, p.ClientID(), "", authNone, cloneValues(challenge), tokenForm)
				if status != http.StatusOK || tok["access_token"] == nil {
					t.Errorf("public client with a challenge, token form %v: %d %v, want tokens (the provider ignores PKCE)", tokenForm, status, tok)
				}
			}

			// The client that must use PKCE.
			status, ans := e.post(t, e.doc.DeviceAuthorization, PKCEClientID, "", authNone, url.Values{"scope": {"openid"}})
			desc, _ := ans["error_description"].(string)
			if status != http.StatusBadRequest || ans["error"] != "invalid_request" || !strings.Contains(desc, "code_challenge") {
				t.Errorf("PKCE client without a challenge: %d %v, want invalid_request naming code_challenge", status, ans)
			}
			for _, c := range []struct {
				form url.Values
				ok   bool
			}{
				{nil, false},
				{withVerifier(oauth2.GenerateVerifier()), false},
				{withVerifier(verifier), true},
			} {
				status, tok := e.deviceLogin(t, PKCEClientID, "", authNone, cloneValues(challenge), c.form)
				switch {
				case c.ok && (status != http.StatusOK || tok["access_token"] == nil || tok["refresh_token"] == nil):
					t.Errorf("PKCE client with the verifier: %d %v, want tokens", status, tok)
				case !c.ok && (status != http.StatusBadRequest || tok["error"] != "invalid_grant"):
					t.Errorf("PKCE client, token form %v: %d %v, want invalid_grant", c.form, status, tok)
				}
			}
		})
	}
}

// jwtClaims decodes a JWT's claims without checking its signature (the
// provider tests check signatures elsewhere).
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (%d parts)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// audOf is a JWT's aud when it names one audience (a string or a list of
// one).
func audOf(claims map[string]any) string {
	switch a := claims["aud"].(type) {
	case string:
		return a
	case []any:
		if len(a) == 1 {
			s, _ := a[0].(string)
			return s
		}
	}
	return ""
}
