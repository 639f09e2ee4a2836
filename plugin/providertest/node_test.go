package providertest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const nodeTestScopes = "openid offline_access profile email"

// nodeDiscovery is the part of the discovery document the tests use.
type nodeDiscovery struct {
	Issuer                      string `json:"issuer"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	TokenEndpoint               string `json:"token_endpoint"`
	RevocationEndpoint          string `json:"revocation_endpoint"`
	UserinfoEndpoint            string `json:"userinfo_endpoint"`
	JWKSURI                     string `json:"jwks_uri"`
}

// nodeClient is a client of one Node provider, configured from discovery.
type nodeClient struct {
	p      Provider
	http   *http.Client
	disc   nodeDiscovery
	config *oauth2.Config
}

func newNodeClient(t *testing.T, p Provider, hc *http.Client) *nodeClient {
	t.Helper()
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	c := &nodeClient{p: p, http: hc}
	if err := c.getJSON(context.Background(), p.Issuer()+"/.well-known/openid-configuration", &c.disc); err != nil {
		t.Fatalf("discovery: %v", err)
	}
	if c.disc.Issuer != p.Issuer() {
		t.Fatalf("discovery issuer %q, provider says %q", c.disc.Issuer, p.Issuer())
	}
	if c.disc.DeviceAuthorizationEndpoint == "" || c.disc.RevocationEndpoint == "" || c.disc.TokenEndpoint == "" {
		t.Fatalf("discovery lacks device authorization, token or revocation endpoint: %+v", c.disc)
	}
	c.config = &oauth2.Config{
		ClientID: p.ClientID(),
		Endpoint: oauth2.Endpoint{
			DeviceAuthURL: c.disc.DeviceAuthorizationEndpoint,
			TokenURL:      c.disc.TokenEndpoint,
			AuthStyle:     oauth2.AuthStyleInParams,
		},
		Scopes: strings.Fields(nodeTestScopes),
	}
	return c
}

func (c *nodeClient) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.http)
}

func (c *nodeClient) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// postForm posts a form and returns the status and decoded JSON answer.
func (c *nodeClient) postForm(t *testing.T, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := c.http.PostForm(u, form)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("POST %s: %s: not JSON: %s", u, resp.Status, body)
		}
	}
	return resp.StatusCode, m
}

// login runs the whole device flow: authorize, approve as the test user,
// poll for tokens.
func (c *nodeClient) login(t *testing.T, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx(context.Background()), 30*time.Second)
	defer cancel()
	da, err := c.config.DeviceAuth(ctx, opts...)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if err := c.p.Approve(ctx, da.UserCode); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	tok, err := c.config.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	return tok
}

func (c *nodeClient) refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	return c.config.TokenSource(c.ctx(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// verifyJWT checks an RS256 JWT's signature against the provider's JWKS and
// returns its header and claims. It checks nothing else.
func (c *nodeClient) verifyJWT(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS compact serialization (%d parts): %.20q", len(parts), token)
	}
	decode := func(i int, v any) {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("JWT part %d: %v", i, err)
			}
		}
	}
	decode(0, &header)
	decode(1, &claims)
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("JWT signature: %v", err)
	}
	if header["alg"] != "RS256" {
		t.Fatalf("JWT alg %v, want RS256", header["alg"])
	}
	var jwks struct {
		Keys []struct {
			Kid, Kty, N, E string
		} `json:"keys"`
	}
	if err := c.getJSON(context.Background(), c.disc.JWKSURI, &jwks); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	for _, k := range jwks.Keys {
		if k.Kid != header["kid"] || k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatalf("jwk: %v", err)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
			t.Fatalf("JWT signature does not verify: %v", err)
		}
		return header, claims
	}
	t.Fatalf("no RSA key %v in the JWKS", header["kid"])
	return nil, nil
}

func nodeIDToken(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	s, _ := tok.Extra("id_token").(string)
	if s == "" {
		t.Fatal("token response has no id_token")
	}
	return s
}

func nodeOAuthErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func TestNodeDeviceFlow(t *testing.T) {
	t.Parallel()
	p := StartNode(t, Options{IDTokenTTL: 5 * time.Second, AccessTokenTTL: 4 * time.Second})
	if !strings.HasPrefix(p.Issuer(), "http://127.0.0.1:") {
		t.Fatalf("issuer %q", p.Issuer())
	}
	c := newNodeClient(t, p, nil)

	ctx, cancel := context.WithTimeout(c.ctx(context.Background()), 30*time.Second)
	defer cancel()
	da, err := c.config.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if da.Interval != 1 {
		t.Errorf("interval %d, want 1 (the default Options.Interval)", da.Interval)
	}
	if da.UserCode == "" || da.DeviceCode == "" || da.VerificationURI != p.Issuer()+"/device" ||
		!strings.Contains(da.VerificationURIComplete, url.QueryEscape(da.UserCode)) {
		t.Errorf("device authorization response %+v", da)
	}
	if left := time.Until(da.Expiry); left < 9*time.Minute || left > 10*time.Minute+time.Second {
		t.Errorf("device code expires in %v, want 10m", left)
	}

	// Poll while the person approves, as a real client does.
	type result struct {
		tok *oauth2.Token
		err error
	}
	polled := make(chan result, 1)
	go func() {
		tok, err := c.config.DeviceAccessToken(ctx, da)
		polled <- result{tok, err}
	}()
	time.Sleep(1200 * time.Millisecond) // at least one authorization_pending
	if err := p.Approve(ctx, da.UserCode); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	r := <-polled
	if r.err != nil {
		t.Fatalf("DeviceAccessToken: %v", r.err)
	}
	tok := r.tok
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("want access and refresh tokens, got access %t refresh %t", tok.AccessToken != "", tok.RefreshToken != "")
	}
	if strings.Count(tok.AccessToken, ".") == 2 {
		t.Errorf("access token looks like a JWT without an audience; want opaque")
	}
	if got := tok.Extra("expires_in"); got != float64(4) {
		t.Errorf("access token expires_in %v, want 4", got)
	}
	_, claims := c.verifyJWT(t, nodeIDToken(t, tok))
	want := map[string]any{
		"iss":            p.Issuer(),
		"aud":            p.ClientID(),
		"sub":            p.Subject(),
		"email":          p.Email(),
		"email_verified": true,
		"name":           "Alice Example",
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("id_token %s = %v, want %v", k, claims[k], v)
		}
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 5 {
		t.Errorf("id_token lifetime %vs, want 5s", exp-iat)
	}

	// The access token works at the userinfo endpoint.
	var info map[string]any
	hc := oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok))
	uc := &nodeClient{http: hc}
	if err := uc.getJSON(ctx, c.disc.UserinfoEndpoint, &info); err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if info["sub"] != p.Subject() || info["email"] != p.Email() {
		t.Errorf("userinfo %v", info)
	}

	// A second approval of a used code fails.
	if err := p.Approve(ctx, da.UserCode); err == nil {
		t.Error("Approve of an already approved code succeeded")
	}
}

func TestNodeRefreshRotationAndReuse(t *testing.T) {
	t.Parallel()
	p := StartNode(t, Options{})
	c := newNodeClient(t, p, nil)
	tok1 := c.login(t)
	ctx := context.Background()

	tok2, err := c.refresh(ctx, tok1.RefreshToken)
	if err != nil {
		t.Fatalf("first refresh: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok1.RefreshToken {
		t.Fatalf("refresh token not rotated (new empty: %t)", tok2.RefreshToken == "")
	}
	if tok2.AccessToken == tok1.AccessToken {
		t.Fatal("refresh returned the same access token")
	}
	_, claims := c.verifyJWT(t, nodeIDToken(t, tok2))
	if claims["sub"] != p.Subject() || claims["email"] != p.Email() {
		t.Errorf("refreshed id_token claims %v", claims)
	}

	userinfo := func(tok *oauth2.Token) int {
		req, _ := http.NewRequest(http.MethodGet, c.disc.UserinfoEndpoint, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := userinfo(tok2); got != http.StatusOK {
		t.Fatalf("userinfo with the refreshed access token: %d", got)
	}

	// Reuse of the rotated token is refused and revokes the whole grant.
	_, err = c.refresh(ctx, tok1.RefreshToken)
	if code := nodeOAuthErrorCode(err); code != "invalid_grant" {
		t.Fatalf("reusing the old refresh token: %v (code %q), want invalid_grant", err, code)
	}
	_, err = c.refresh(ctx, tok2.RefreshToken)
	if code := nodeOAuthErrorCode(err); code != "invalid_grant" {
		t.Fatalf("new refresh token after reuse: %v (code %q), want invalid_grant (grant revoked)", err, code)
	}
	if got := userinfo(tok2); got != http.StatusUnauthorized {
		t.Errorf("userinfo with the access token of the revoked grant: %d, want 401", got)
	}
}

func TestNodeRevokeRefreshToken(t *testing.T) {
	t.Parallel()
	p := StartNode(t, Options{})
	c := newNodeClient(t, p, nil)
	tok := c.login(t)
	ctx := context.Background()
	if err := p.RevokeRefreshToken(ctx, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, err := c.refresh(ctx, tok.RefreshToken)
	if code := nodeOAuthErrorCode(err); code != "invalid_grant" {
		t.Fatalf("refresh after revocation: %v, want invalid_grant", err)
	}
}

func TestNodeDeny(t *testing.T) {
	t.Parallel()
	p := StartNode(t, Options{})
	c := newNodeClient(t, p, nil)
	ctx, cancel := context.WithTimeout(c.ctx(context.Background()), 30*time.Second)
	defer cancel()
	da, err := c.config.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	polled := make(chan error, 1)
	go func() {
		_, err := c.config.DeviceAccessToken(ctx, da)
		polled <- err
	}()
	time.Sleep(1200 * time.Millisecond) // at least one authorization_pending
	if err := p.Deny(ctx, da.UserCode); err != nil {
		t.Fatalf("Deny: %v", err)
	}
	err = <-polled
	if code := nodeOAuthErrorCode(err); code != "access_denied" {
		t.Fatalf("poll after deny: %v (code %q), want access_denied", err, code)
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		t.Logf("poll after deny: %d %s", re.Response.StatusCode, re.Body)
	}
	// The denied code is spent: asking again is a replay.
	status, body := c.postForm(t, c.disc.TokenEndpoint, url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {da.DeviceCode},
		"client_id":   {p.ClientID()},
	})
	t.Logf("second token request after deny: %d %v", status, body)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("second token request after deny: %d %v, want invalid_grant", status, body)
	}
	if err := p.Approve(ctx, da.UserCode); err == nil {
		t.Error("Approve after Deny succeeded")
	}
	if err := p.Approve(ctx, "BCDF-GHJK"); err == nil {
		t.Error("Approve of an unknown user code succeeded")
	}
}

func TestNodeExpiredDeviceCode(t *testing.T) {
	t.Parallel()
	p := StartNode(t, Options{DeviceCodeTTL: 2 * time.Second})
	c := newNodeClient(t, p, nil)
	ctx := context.Background()
	status, da := c.postForm(t, c.disc.DeviceAuthorizationEndpoint, url.Values{
		"client_id": {p.ClientID()},
		"scope":     {nodeTestScopes},
	})
	if status != http.StatusOK || da["expires_in"] != float64(2) {
		t.Fatalf("device authorization: %d %v, want expires_in 2", status, da)
	}
	poll := url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {da["device_code"].(string)},
		"client_id":   {p.ClientID()},
	}
	status, body := c.postForm(t, c.disc.TokenEndpoint, poll)
	if status != http.StatusBadRequest || body["error"] != "authorization_pending" {
		t.Fatalf("first poll: %d %v, want authorization_pending", status, body)
	}
	time.Sleep(3 * time.Second)
	status, body = c.postForm(t, c.disc.TokenEndpoint, poll)
	t.Logf("poll after expiry: %d %v", status, body)
	if status != http.StatusBadRequest || body["error"] != "expired_token" {
		t.Fatalf("poll after expiry: %d %v, want 400 expired_token", status, body)
	}
	if err := p.Approve(ctx, da["user_code"].(string)); err == nil {
		t.Error("Approve of an expired code succeeded")
	}
}

func TestNodeCounts(t *testing.T) {
	t.Parallel()
	p := StartNode(t, Options{})
	ctx := context.Background()
	if got, err := p.Counts(ctx); err != nil || got != (Counts{}) {
		t.Fatalf("fresh provider counts %+v, %v", got, err)
	}
	c := newNodeClient(t, p, nil) // 1 discovery

	auth := func() map[string]any {
		status, da := c.postForm(t, c.disc.DeviceAuthorizationEndpoint, url.Values{
			"client_id": {p.ClientID()}, "scope": {nodeTestScopes},
		})
		if status != http.StatusOK {
			t.Fatalf("device authorization: %d %v", status, da)
		}
		return da
	}
	auth()       // 1 device authorization, never used
	da := auth() // 2
	poll := url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {da["device_code"].(string)},
		"client_id":   {p.ClientID()},
	}
	for range 2 { // 2 pending polls
		if status, body := c.postForm(t, c.disc.TokenEndpoint, poll); body["error"] != "authorization_pending" {
			t.Fatalf("poll: %d %v", status, body)
		}
	}
	if err := p.Approve(ctx, da["user_code"].(string)); err != nil { // counts nothing
		t.Fatal(err)
	}
	status, body := c.postForm(t, c.disc.TokenEndpoint, poll) // 3rd device_code grant
	if status != http.StatusOK {
		t.Fatalf("poll: %d %v", status, body)
	}
	rt := body["refresh_token"].(string)
	for range 2 { // 2 refreshes
		status, body := c.postForm(t, c.disc.TokenEndpoint, url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {p.ClientID()},
		})
		if status != http.StatusOK {
			t.Fatalf("refresh: %d %v", status, body)
		}
		rt = body["refresh_token"].(string)
	}
	if err := p.RevokeRefreshToken(ctx, rt); err != nil { // 1 revocation
		t.Fatal(err)
	}
	want := Counts{Discovery: 1, DeviceAuthorization: 2, DeviceCodeGrant: 3, RefreshTokenGrant: 2, Revocation: 1}
	got, err := p.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
}

func TestNodeAutoApprove(t *testing.T) {
	t.Parallel()
	p := StartNode(t, Options{AutoApprove: true})
	c := newNodeClient(t, p, nil)
	ctx, cancel := context.WithTimeout(c.ctx(context.Background()), 20*time.Second)
	defer cancel()

	const n = 4
	var wg sync.WaitGroup
	toks := make([]*oauth2.Token, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			da, err := c.config.DeviceAuth(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			toks[i], errs[i] = c.config.DeviceAccessToken(ctx, da)
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		if toks[i].RefreshToken == "" || seen[toks[i].AccessToken] {
			t.Fatalf("client %d: no refresh token or a duplicate access token", i)
		}
		seen[toks[i].AccessToken] = true
		_, claims := c.verifyJWT(t, nodeIDToken(t, toks[i]))
		if claims["sub"] != p.Subject() {
			t.Errorf("client %d: sub %v", i, claims["sub"])
		}
	}
	got, err := p.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.DeviceAuthorization != n || got.DeviceCodeGrant < n {
		t.Errorf("counts %+v, want %d device authorizations and at least %d polls", got, n, n)
	}
}

// nodeWriteTestCert makes a throwaway CA and a server certificate for 127.0.0.1
// signed by it; it returns the CA pool and the server's PEM files.
func nodeWriteTestCert(t *testing.T) (*x509.CertPool, string, string) {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "providertest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, certFile, keyFile
}

func TestNodeHTTPS(t *testing.T) {
	t.Parallel()
	pool, certFile, keyFile := nodeWriteTestCert(t)
	p := StartNode(t, Options{CertFile: certFile, KeyFile: keyFile})
	if !strings.HasPrefix(p.Issuer(), "https://127.0.0.1:") {
		t.Fatalf("issuer %q, want https://127.0.0.1:PORT", p.Issuer())
	}

	// Without the CA the server is not trusted: it really is TLS.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(p.Issuer() + "/.well-known/openid-configuration")
	if err == nil {
		resp.Body.Close()
		t.Fatal("HTTPS provider trusted without the test CA")
	}

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := newNodeClient(t, p, hc)
	for _, u := range []string{c.disc.DeviceAuthorizationEndpoint, c.disc.TokenEndpoint, c.disc.RevocationEndpoint} {
		if !strings.HasPrefix(u, "https://127.0.0.1:") {
			t.Errorf("endpoint %q is not https", u)
		}
	}
	tok := c.login(t)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	if _, err := c.refresh(context.Background(), tok.RefreshToken); err != nil {
		t.Fatalf("refresh over HTTPS: %v", err)
	}
	if err := p.RevokeRefreshToken(context.Background(), tok.RefreshToken); err != nil {
		t.Fatalf("revocation over HTTPS: %v", err)
	}
}

func TestNodeAudience(t *testing.T) {
	t.Parallel()
	const aud = "https://kubernetes.test"
	p := StartNode(t, Options{Audience: aud, AccessTokenTTL: 5 * time.Second})
	c := newNodeClient(t, p, nil)

	checkAT := func(t *testing.T, tok *oauth2.Token) {
		t.Helper()
		header, claims := c.verifyJWT(t, tok.AccessToken)
		if header["typ"] != "at+jwt" {
			t.Errorf("access token typ %v, want at+jwt", header["typ"])
		}
		if claims["aud"] != aud || claims["iss"] != p.Issuer() || claims["sub"] != p.Subject() ||
			claims["client_id"] != p.ClientID() {
			t.Errorf("access token claims %v", claims)
		}
		if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 5 {
			t.Errorf("access token lifetime %vs, want 5s", exp-iat)
		}
		if _, claims := c.verifyJWT(t, nodeIDToken(t, tok)); claims["aud"] != p.ClientID() {
			t.Errorf("id_token aud %v, want the client ID", claims["aud"])
		}
	}

	for _, param := range []string{"resource", "audience"} {
		t.Run(param, func(t *testing.T) {
			tok := c.login(t, oauth2.SetAuthURLParam(param, aud))
			checkAT(t, tok)
			// A refresh keeps the audience without asking again.
			tok2, err := c.refresh(context.Background(), tok.RefreshToken)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			checkAT(t, tok2)
		})
	}

	t.Run("none", func(t *testing.T) {
		tok := c.login(t)
		if strings.Count(tok.AccessToken, ".") == 2 {
			t.Errorf("access token without an audience request is a JWT; want opaque")
		}
	})

	t.Run("other", func(t *testing.T) {
		_, err := c.config.DeviceAuth(c.ctx(context.Background()), oauth2.SetAuthURLParam("resource", "https://other.test"))
		if code := nodeOAuthErrorCode(err); code != "invalid_target" {
			t.Errorf("unknown resource: %v, want invalid_target", err)
		}
	})
}

// TestNodeQuirks pins down answers to questions about oidc-provider that
// the plugin's design depends on.
func TestNodeQuirks(t *testing.T) {
	t.Parallel()
	p := StartNode(t, Options{})
	c := newNodeClient(t, p, nil)
	ctx := context.Background()

	// Unknown extra parameters on the device authorization request are
	// ignored.
	status, da := c.postForm(t, c.disc.DeviceAuthorizationEndpoint, url.Values{
		"client_id": {p.ClientID()}, "scope": {nodeTestScopes}, "foo": {"bar"}, "prompt": {"login"},
	})
	if status != http.StatusOK {
		t.Fatalf("device authorization with unknown parameters: %d %v", status, da)
	}
	// "audience" is mapped to a resource here, so without Options.Audience
	// it is refused.
	status, body := c.postForm(t, c.disc.DeviceAuthorizationEndpoint, url.Values{
		"client_id": {p.ClientID()}, "scope": {nodeTestScopes}, "audience": {"x"},
	})
	t.Logf("audience=x without Options.Audience: %d %v", status, body)
	if status != http.StatusBadRequest || body["error"] != "invalid_target" {
		t.Errorf("audience=x: %d %v, want 400 invalid_target", status, body)
	}

	// A device_code token request with an extra empty code= is accepted,
	// pending and approved alike.
	poll := url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {da["device_code"].(string)},
		"client_id":   {p.ClientID()},
		"code":        {""},
	}
	if status, body := c.postForm(t, c.disc.TokenEndpoint, poll); status != http.StatusBadRequest || body["error"] != "authorization_pending" {
		t.Fatalf("pending poll with code=: %d %v", status, body)
	}
	if err := p.Approve(ctx, da["user_code"].(string)); err != nil {
		t.Fatal(err)
	}
	status, body = c.postForm(t, c.disc.TokenEndpoint, poll)
	if status != http.StatusOK || body["access_token"] == nil || body["refresh_token"] == nil || body["id_token"] == nil {
		t.Fatalf("approved poll with code=: %d %v", status, body)
	}
	rt := body["refresh_token"].(string)

	// Replaying the device code after success revokes the grant.
	status, body = c.postForm(t, c.disc.TokenEndpoint, poll)
	t.Logf("device code replay: %d %v", status, body)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("device code replay: %d %v, want invalid_grant", status, body)
	}
	if _, err := c.refresh(ctx, rt); nodeOAuthErrorCode(err) != "invalid_grant" {
		t.Errorf("refresh after device code replay: %v, want invalid_grant", err)
	}
}
