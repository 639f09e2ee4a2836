package providertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// zitadelTestScopes are the scopes a kubectl login asks for.
var zitadelTestScopes = []string{"openid", "offline_access", "profile", "email"}

// zitadelDiscovery is the part of the discovery document the tests use.
type zitadelDiscovery struct {
	Issuer                      string   `json:"issuer"`
	DeviceAuthorizationEndpoint string   `json:"device_authorization_endpoint"`
	TokenEndpoint               string   `json:"token_endpoint"`
	RevocationEndpoint          string   `json:"revocation_endpoint"`
	UserinfoEndpoint            string   `json:"userinfo_endpoint"`
	JWKSURI                     string   `json:"jwks_uri"`
	GrantTypesSupported         []string `json:"grant_types_supported"`
	ScopesSupported             []string `json:"scopes_supported"`
}

// zitadelClientEnv is a client of a provider under test, as the plugin
// would be: discovery, then x/oauth2 with the endpoints found there.
type zitadelClientEnv struct {
	p    Provider
	http *http.Client
	doc  zitadelDiscovery
	conf *oauth2.Config
	ctx  context.Context // carries http for x/oauth2
	// auto is set for a provider started with AutoApprove: login does
	// not approve through the page.
	auto bool
}

func newZitadelClientEnv(t *testing.T, p Provider, hc *http.Client, scopes ...string) *zitadelClientEnv {
	t.Helper()
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	e := &zitadelClientEnv{p: p, http: hc}
	resp, err := hc.Get(p.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&e.doc); err != nil {
		t.Fatalf("discovery: %v", err)
	}
	if len(scopes) == 0 {
		scopes = zitadelTestScopes
	}
	e.conf = &oauth2.Config{
		ClientID: p.ClientID(),
		Scopes:   scopes,
		Endpoint: oauth2.Endpoint{
			DeviceAuthURL: e.doc.DeviceAuthorizationEndpoint,
			TokenURL:      e.doc.TokenEndpoint,
			AuthStyle:     oauth2.AuthStyleInParams,
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	e.ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	return e
}

// login runs a whole device login, approving as the test user through the
// verification page once the authorization is issued.
func (e *zitadelClientEnv) login(t *testing.T, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	da, err := e.conf.DeviceAuth(e.ctx, opts...)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if !e.auto {
		if err := e.p.Approve(e.ctx, da.UserCode); err != nil {
			t.Fatalf("approve: %v", err)
		}
	}
	tok, err := e.conf.DeviceAccessToken(e.ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	return tok
}

// refresh spends a refresh token.
func (e *zitadelClientEnv) refresh(refreshToken string) (*oauth2.Token, error) {
	return e.conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// postToken posts a raw token request and returns the status and the
// decoded JSON answer.
func (e *zitadelClientEnv) postToken(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := e.http.PostForm(e.doc.TokenEndpoint, form)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("token response: %v", err)
	}
	return resp.StatusCode, out
}

// zitadelDescribe summarizes a token endpoint answer without printing
// any token.
func zitadelDescribe(body map[string]any) string {
	if body["error"] != nil {
		return fmt.Sprintf("error=%v (%v)", body["error"], body["error_description"])
	}
	var keys []string
	for k := range body {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return "success with " + strings.Join(keys, ",")
}

func (e *zitadelClientEnv) deviceCodeForm(deviceCode string) url.Values {
	return url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {deviceCode},
		"client_id":   {e.p.ClientID()},
	}
}

// verifyJWT checks a JWT's signature against the provider's JWKS and
// returns its claims.
func (e *zitadelClientEnv) verifyJWT(t *testing.T, token string) map[string]any {
	t.Helper()
	resp, err := e.http.Get(e.doc.JWKSURI)
	if err != nil {
		t.Fatalf("jwks: %v", err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys with kid %q", len(keys), jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("JWT signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("JWT claims: %v", err)
	}
	return claims
}

func zitadelIDToken(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	s, _ := tok.Extra("id_token").(string)
	if s == "" {
		t.Fatal("no id_token in the token response")
	}
	return s
}

// audList reads an aud claim, which may be a string or a list.
func audList(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func wantOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("got error %v, want OAuth error %s", err, code)
	}
	if re.ErrorCode != code {
		t.Fatalf("got OAuth error %q (%s), want %q", re.ErrorCode, re.ErrorDescription, code)
	}
}

func TestZitadelDiscovery(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{})
	e := newZitadelClientEnv(t, p, nil)
	if !strings.HasPrefix(p.Issuer(), "http://127.0.0.1:") || strings.HasSuffix(p.Issuer(), "/") {
		t.Errorf("issuer %q, want http://127.0.0.1:PORT", p.Issuer())
	}
	if e.doc.Issuer != p.Issuer() {
		t.Errorf("discovery issuer %q, Issuer() %q", e.doc.Issuer, p.Issuer())
	}
	for name, got := range map[string]string{
		"device_authorization_endpoint": e.doc.DeviceAuthorizationEndpoint,
		"token_endpoint":                e.doc.TokenEndpoint,
		"revocation_endpoint":           e.doc.RevocationEndpoint,
		"jwks_uri":                      e.doc.JWKSURI,
	} {
		if !strings.HasPrefix(got, p.Issuer()+"/") {
			t.Errorf("%s = %q, want a URL under the issuer", name, got)
		}
	}
	for _, g := range []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"} {
		if !slices.Contains(e.doc.GrantTypesSupported, g) {
			t.Errorf("grant_types_supported %v lacks %s", e.doc.GrantTypesSupported, g)
		}
	}
	for _, s := range zitadelTestScopes {
		if !slices.Contains(e.doc.ScopesSupported, s) {
			t.Errorf("scopes_supported %v lacks %s", e.doc.ScopesSupported, s)
		}
	}
	// The key set holds public keys only.
	resp, err := e.http.Get(e.doc.JWKSURI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %d keys, %v", len(set.Keys), err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Use != "sig" || k.Algorithm != "RS256" {
			t.Errorf("jwks key %q: public %t use %q alg %q", k.KeyID, k.IsPublic(), k.Use, k.Algorithm)
		}
	}
	if p.Subject() != "alice" || p.Email() != "alice@example.test" {
		t.Errorf("test user %q <%s>", p.Subject(), p.Email())
	}
}

func TestZitadelDeviceLogin(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{AccessTokenTTL: 30 * time.Minute, IDTokenTTL: 20 * time.Minute})
	e := newZitadelClientEnv(t, p, nil)

	da, err := e.conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if da.VerificationURI != p.Issuer()+"/device" {
		t.Errorf("verification_uri %q", da.VerificationURI)
	}
	if da.VerificationURIComplete != da.VerificationURI+"?user_code="+url.QueryEscape(da.UserCode) {
		t.Errorf("verification_uri_complete %q for user code %q", da.VerificationURIComplete, da.UserCode)
	}
	if da.Interval != 1 {
		t.Errorf("interval %d, want 1", da.Interval)
	}
	if left := time.Until(da.Expiry); left < 590*time.Second || left > 600*time.Second {
		t.Errorf("expires_in gives %v, want 10m", left)
	}

	// Still pending before anyone approves.
	status, body := e.postToken(t, e.deviceCodeForm(da.DeviceCode))
	if status != http.StatusBadRequest || body["error"] != "authorization_pending" {
		t.Fatalf("before approval: HTTP %d %v, want authorization_pending", status, zitadelDescribe(body))
	}

	go func() {
		time.Sleep(300 * time.Millisecond)
		if err := p.Approve(e.ctx, da.UserCode); err != nil {
			t.Errorf("approve: %v", err)
		}
	}()
	tok, err := e.conf.DeviceAccessToken(e.ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token response lacks access or refresh token: access %t refresh %t", tok.AccessToken != "", tok.RefreshToken != "")
	}
	if left := time.Until(tok.Expiry); left < 29*time.Minute || left > 30*time.Minute+time.Second {
		t.Errorf("access token expires in %v, want 30m", left)
	}
	claims := e.verifyJWT(t, zitadelIDToken(t, tok))
	for k, want := range map[string]any{
		"iss":            p.Issuer(),
		"sub":            "alice",
		"email":          "alice@example.test",
		"email_verified": true,
		"name":           "Alice Example",
	} {
		if claims[k] != want {
			t.Errorf("id_token %s = %v, want %v", k, claims[k], want)
		}
	}
	if aud := audList(claims["aud"]); !slices.Equal(aud, []string{p.ClientID()}) {
		t.Errorf("id_token aud %v, want [%s]", aud, p.ClientID())
	}
	exp, _ := claims["exp"].(float64)
	if left := time.Until(time.Unix(int64(exp), 0)); left < 19*time.Minute || left > 20*time.Minute+time.Second {
		t.Errorf("id_token expires in %v, want 20m", left)
	}

	// The opaque access token works at the userinfo endpoint.
	req, _ := http.NewRequest(http.MethodGet, e.doc.UserinfoEndpoint, nil)
	tok.SetAuthHeader(req)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("userinfo: HTTP %d, %v", resp.StatusCode, err)
	}
	if info["sub"] != "alice" || info["email"] != "alice@example.test" {
		t.Errorf("userinfo %v", info)
	}
}

func TestZitadelRefreshRotationAndReuse(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{})
	e := newZitadelClientEnv(t, p, nil)
	tok1 := e.login(t)

	tok2, err := e.refresh(tok1.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok1.RefreshToken {
		t.Fatal("refresh did not rotate the refresh token")
	}
	if tok2.AccessToken == tok1.AccessToken {
		t.Error("refresh returned the same access token")
	}
	claims := e.verifyJWT(t, zitadelIDToken(t, tok2))
	if claims["sub"] != "alice" || claims["email"] != "alice@example.test" {
		t.Errorf("id_token on refresh: sub %v email %v", claims["sub"], claims["email"])
	}

	// The old refresh token again: refused, and the whole login dies.
	_, err = e.refresh(tok1.RefreshToken)
	wantOAuthError(t, err, "invalid_grant")
	_, err = e.refresh(tok2.RefreshToken)
	wantOAuthError(t, err, "invalid_grant")
}

func TestZitadelRefreshChain(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{})
	e := newZitadelClientEnv(t, p, nil)
	rt := e.login(t).RefreshToken
	seen := map[string]bool{rt: true}
	for i := 0; i < 5; i++ {
		tok, err := e.refresh(rt)
		if err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		if seen[tok.RefreshToken] {
			t.Fatalf("refresh %d returned a refresh token seen before", i)
		}
		seen[tok.RefreshToken] = true
		rt = tok.RefreshToken
	}
}

func TestZitadelConcurrentRefreshOneWins(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{})
	e := newZitadelClientEnv(t, p, nil)
	rt := e.login(t).RefreshToken
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.refresh(rt)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	// Reuse revokes the family, so at most one refresh wins, and the loser
	// may even kill the winner's new token.
	if ok > 1 {
		t.Fatalf("%d concurrent refreshes with one token succeeded, want at most 1", ok)
	}
}

func TestZitadelNoOfflineAccessNoRefreshToken(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{AutoApprove: true})
	e := newZitadelClientEnv(t, p, nil, "openid", "email")
	e.auto = true
	tok := e.login(t)
	if tok.RefreshToken != "" {
		t.Error("refresh token issued without offline_access")
	}
	claims := e.verifyJWT(t, zitadelIDToken(t, tok))
	if claims["email"] != "alice@example.test" || claims["name"] != nil {
		t.Errorf("id_token with scopes openid email: email %v name %v", claims["email"], claims["name"])
	}
}

func TestZitadelDeny(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{})
	e := newZitadelClientEnv(t, p, nil)
	da, err := e.conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Deny(e.ctx, da.UserCode); err != nil {
		t.Fatalf("deny: %v", err)
	}
	_, err = e.conf.DeviceAccessToken(e.ctx, da)
	wantOAuthError(t, err, "access_denied")
	// A decided code cannot be approved afterwards.
	if err := p.Approve(e.ctx, da.UserCode); err == nil {
		t.Error("approving a denied code succeeded")
	}
}

func TestZitadelExpiredToken(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{DeviceCodeTTL: 2 * time.Second})
	e := newZitadelClientEnv(t, p, nil)
	da, err := e.conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(da.Expiry); left > 2*time.Second || left < time.Second {
		t.Errorf("expires_in gives %v, want 2s", left)
	}
	status, body := e.postToken(t, e.deviceCodeForm(da.DeviceCode))
	if body["error"] != "authorization_pending" {
		t.Fatalf("fresh code: HTTP %d %v", status, zitadelDescribe(body))
	}
	time.Sleep(time.Until(da.Expiry) + 300*time.Millisecond)
	status, body = e.postToken(t, e.deviceCodeForm(da.DeviceCode))
	if status != http.StatusBadRequest || body["error"] != "expired_token" {
		t.Fatalf("expired code: HTTP %d %v, want 400 expired_token", status, zitadelDescribe(body))
	}
	err = p.Approve(e.ctx, da.UserCode)
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("approving an expired code: %v, want an error saying expired", err)
	}
}

func TestZitadelApprovedButExpired(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{DeviceCodeTTL: time.Second})
	e := newZitadelClientEnv(t, p, nil)
	da, err := e.conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Approve(e.ctx, da.UserCode); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(da.Expiry) + 1200*time.Millisecond)
	status, body := e.postToken(t, e.deviceCodeForm(da.DeviceCode))
	if body["error"] != "expired_token" {
		t.Fatalf("approved code redeemed after expiry: HTTP %d %v, want expired_token", status, zitadelDescribe(body))
	}
}

// countingTransport counts the requests the client under test sends.
type countingTransport struct {
	mu     sync.Mutex
	counts Counts
	next   http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
		c.counts.Discovery++
	case r.URL.Path == "/device_authorization":
		c.counts.DeviceAuthorization++
	case r.URL.Path == "/revoke":
		c.counts.Revocation++
	case r.URL.Path == "/oauth/token":
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		form, _ := url.ParseQuery(string(body))
		switch form.Get("grant_type") {
		case "urn:ietf:params:oauth:grant-type:device_code":
			c.counts.DeviceCodeGrant++
		case "refresh_token":
			c.counts.RefreshTokenGrant++
		}
	}
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func TestZitadelCounts(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{})
	ct := &countingTransport{next: http.DefaultTransport}
	e := newZitadelClientEnv(t, p, &http.Client{Transport: ct, Timeout: 20 * time.Second})
	ctx := context.Background()

	da, err := e.conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, body := e.postToken(t, e.deviceCodeForm(da.DeviceCode)); body["error"] != "authorization_pending" {
			t.Fatalf("poll %d: %v", i, zitadelDescribe(body))
		}
	}
	if err := p.Approve(ctx, da.UserCode); err != nil {
		t.Fatal(err)
	}
	tok, err := e.conf.DeviceAccessToken(e.ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	tok, err = e.refresh(tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.refresh(tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if err := p.RevokeRefreshToken(ctx, "not-a-token"); err != nil {
		t.Fatal(err)
	}

	got, err := p.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := ct.counts
	want.Revocation++ // RevokeRefreshToken's own request
	if got != want {
		t.Errorf("provider counted %+v, client sent %+v", got, want)
	}
	if want.Discovery != 1 || want.DeviceAuthorization != 1 || want.DeviceCodeGrant != 3 || want.RefreshTokenGrant != 2 {
		t.Errorf("unexpected client counts %+v", want)
	}
}

func TestZitadelAutoApprove(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{AutoApprove: true})
	e := newZitadelClientEnv(t, p, nil)
	e.auto = true
	da, err := e.conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Approved already: the first poll (after 1 s) must succeed.
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	tok, err := e.conf.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	if claims := e.verifyJWT(t, zitadelIDToken(t, tok)); claims["sub"] != "alice" {
		t.Errorf("sub %v", claims["sub"])
	}
	c, _ := p.Counts(e.ctx)
	if c.DeviceCodeGrant != 1 {
		t.Errorf("%d device code polls, want 1 with AutoApprove", c.DeviceCodeGrant)
	}
	// The code was approved already: a person cannot decide it again.
	if err := p.Approve(e.ctx, da.UserCode); err == nil {
		t.Error("approving an auto-approved code succeeded")
	}
}

func TestZitadelDeviceCodeReplay(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{})
	e := newZitadelClientEnv(t, p, nil)
	da, err := e.conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Approve(e.ctx, da.UserCode); err != nil {
		t.Fatal(err)
	}
	status, body := e.postToken(t, e.deviceCodeForm(da.DeviceCode))
	rt, _ := body["refresh_token"].(string)
	if status != http.StatusOK || rt == "" {
		t.Fatalf("first redemption: HTTP %d, refresh token %t", status, rt != "")
	}
	status, body = e.postToken(t, e.deviceCodeForm(da.DeviceCode))
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("replayed device code: HTTP %d %v, want 400 invalid_grant", status, zitadelDescribe(body))
	}
	// The replay revoked what the code had given.
	_, err = e.refresh(rt)
	wantOAuthError(t, err, "invalid_grant")

	status, body = e.postToken(t, e.deviceCodeForm("no-such-code"))
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("unknown device code: HTTP %d %v, want invalid_grant", status, zitadelDescribe(body))
	}
}

func TestZitadelRevokeRefreshToken(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{AutoApprove: true})
	e := newZitadelClientEnv(t, p, nil)
	e.auto = true
	tok := e.login(t)
	tok2, err := e.refresh(tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.RevokeRefreshToken(e.ctx, tok2.RefreshToken); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	_, err = e.refresh(tok2.RefreshToken)
	wantOAuthError(t, err, "invalid_grant")
	// Revoking an unknown or dead token is not an error (RFC 7009).
	if err := p.RevokeRefreshToken(e.ctx, tok2.RefreshToken); err != nil {
		t.Errorf("revoke again: %v", err)
	}
	if c, _ := p.Counts(e.ctx); c.Revocation != 2 {
		t.Errorf("revocations counted %d, want 2", c.Revocation)
	}
}

func TestZitadelAudience(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{Audience: "kubernetes", AutoApprove: true})
	e := newZitadelClientEnv(t, p, nil)
	e.auto = true

	tok := e.login(t, oauth2.SetAuthURLParam("audience", "kubernetes"))
	at := e.verifyJWT(t, tok.AccessToken)
	if aud := audList(at["aud"]); !slices.Equal(aud, []string{"kubernetes"}) {
		t.Errorf("access token aud %v, want [kubernetes]", aud)
	}
	if at["sub"] != "alice" || at["iss"] != p.Issuer() || at["client_id"] != p.ClientID() {
		t.Errorf("access token claims %v", at)
	}
	id := e.verifyJWT(t, zitadelIDToken(t, tok))
	if aud := audList(id["aud"]); !slices.Equal(aud, []string{p.ClientID()}) {
		t.Errorf("id_token aud %v, want [%s]", aud, p.ClientID())
	}
	// A refresh keeps the audience.
	tok2, err := e.refresh(tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if aud := audList(e.verifyJWT(t, tok2.AccessToken)["aud"]); !slices.Equal(aud, []string{"kubernetes"}) {
		t.Errorf("refreshed access token aud %v", aud)
	}

	// Without an audience the access token stays opaque.
	plain := e.login(t)
	if strings.Count(plain.AccessToken, ".") == 2 {
		t.Error("access token without audience is a JWT")
	}
	// An audience that is not allowed is refused.
	_, err = e.conf.DeviceAuth(e.ctx, oauth2.SetAuthURLParam("audience", "other"))
	wantOAuthError(t, err, "invalid_target")
}

func TestZitadelAudienceNotConfigured(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{})
	e := newZitadelClientEnv(t, p, nil)
	_, err := e.conf.DeviceAuth(e.ctx, oauth2.SetAuthURLParam("audience", "kubernetes"))
	wantOAuthError(t, err, "invalid_target")
}

func TestZitadelUnknownScopeRefused(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{})
	e := newZitadelClientEnv(t, p, nil, "openid", "admin")
	_, err := e.conf.DeviceAuth(e.ctx)
	wantOAuthError(t, err, "invalid_scope")
}

// TestZitadelExtraParameters records how op treats parameters it does not
// know: it ignores them, on the device authorization request and on the
// device code token request (an empty code= included).
func TestZitadelExtraParameters(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{AutoApprove: true})
	e := newZitadelClientEnv(t, p, nil)
	e.auto = true

	resp, err := e.http.PostForm(e.doc.DeviceAuthorizationEndpoint, url.Values{
		"client_id": {p.ClientID()},
		"scope":     {"openid offline_access"},
		"foo":       {"bar"},
		"code":      {""},
		"prompt":    {"consent"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var da struct {
		DeviceCode string `json:"device_code"`
		Error      string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&da); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || da.DeviceCode == "" {
		t.Fatalf("device authorization with unknown parameters: HTTP %d %q", resp.StatusCode, da.Error)
	}

	form := e.deviceCodeForm(da.DeviceCode)
	form.Set("code", "")
	form.Set("foo", "bar")
	status, body := e.postToken(t, form)
	if status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("device code grant with empty code= and foo=: HTTP %d %v", status, body["error"])
	}
}

func TestZitadelVerificationPage(t *testing.T) {
	t.Parallel()
	p := StartZitadel(t, Options{})
	e := newZitadelClientEnv(t, p, nil)
	da, err := e.conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatal(err)
	}

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(u string) (int, string) {
		resp, err := browser.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(form url.Values) (int, string) {
		resp, err := browser.PostForm(p.Issuer()+"/device", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	status, page := get(da.VerificationURIComplete)
	if status != http.StatusOK {
		t.Fatalf("verification page: HTTP %d", status)
	}
	for _, want := range []string{`name="user_code"`, `value="` + da.UserCode + `"`, `value="approve"`, `value="deny"`, "Alice Example", "offline_access"} {
		if !strings.Contains(page, want) {
			t.Errorf("verification page lacks %s", want)
		}
	}
	csrf := zitadelFormValue(page, "csrf")

	// Without the CSRF token the form is refused.
	status, _ = post(url.Values{"user_code": {da.UserCode}, "action": {"approve"}})
	if status != http.StatusForbidden {
		t.Errorf("post without csrf: HTTP %d, want 403", status)
	}
	// An unknown code is reported.
	status, page = post(url.Values{"user_code": {"BBBB-BBBB"}, "action": {"approve"}, "csrf": {csrf}})
	if status != http.StatusBadRequest || !strings.Contains(zitadelPageMessage(page), "nknown") {
		t.Errorf("unknown code: HTTP %d %q", status, zitadelPageMessage(page))
	}
	// People type codes in lower case and without the dash.
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
	status, page = post(url.Values{"user_code": {typed}, "action": {"approve"}, "csrf": {csrf}})
	if status != http.StatusOK || !strings.Contains(page, "Device approved") {
		t.Fatalf("approve %q: HTTP %d %q", typed, status, zitadelPageMessage(page))
	}
	status, page = post(url.Values{"user_code": {da.UserCode}, "action": {"deny"}, "csrf": {csrf}})
	if status != http.StatusConflict {
		t.Errorf("deciding twice: HTTP %d %q, want 409", status, zitadelPageMessage(page))
	}
	if _, err := e.conf.DeviceAccessToken(e.ctx, da); err != nil {
		t.Errorf("token after approval in the page: %v", err)
	}
}

// zitadelTestCert writes a throwaway self-signed certificate for 127.0.0.1.
func zitadelTestCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "providertest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestZitadelHTTPS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := zitadelTestCert(t)
	p := StartZitadel(t, Options{CertFile: certFile, KeyFile: keyFile})
	if !strings.HasPrefix(p.Issuer(), "https://127.0.0.1:") {
		t.Fatalf("issuer %q, want https://127.0.0.1:PORT", p.Issuer())
	}

	// A client that does not trust the certificate cannot talk to it.
	if resp, err := http.Get(p.Issuer() + "/.well-known/openid-configuration"); err == nil {
		resp.Body.Close()
		t.Fatal("plain client accepted the throwaway certificate")
	}

	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("no certificate in the PEM file")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}

	e := newZitadelClientEnv(t, p, hc)
	if e.doc.Issuer != p.Issuer() || !strings.HasPrefix(e.doc.TokenEndpoint, "https://") {
		t.Errorf("discovery over HTTPS: issuer %q token endpoint %q", e.doc.Issuer, e.doc.TokenEndpoint)
	}
	tok := e.login(t)
	if claims := e.verifyJWT(t, zitadelIDToken(t, tok)); claims["iss"] != p.Issuer() {
		t.Errorf("iss %v", claims["iss"])
	}
	if _, err := e.refresh(tok.RefreshToken); err != nil {
		t.Errorf("refresh over HTTPS: %v", err)
	}
	if err := p.RevokeRefreshToken(e.ctx, tok.RefreshToken); err != nil {
		t.Errorf("revoke over HTTPS: %v", err)
	}
}

func TestZitadelClose(t *testing.T) {
	t.Parallel()
	z, err := NewZitadel(Options{})
	if err != nil {
		t.Fatal(err)
	}
	issuer := z.Issuer()
	if err := z.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := z.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if resp, err := http.Get(issuer + "/.well-known/openid-configuration"); err == nil {
		resp.Body.Close()
		t.Fatal("provider still answers after Close")
	}
}
