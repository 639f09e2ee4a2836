package providertest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	zitadelClientID   = "kubectl-device-login"
	zitadelVerifyPath = "/device"
)

// Zitadel is an OpenID Connect provider built on zitadel's op package,
// running in this process on a loopback port. It implements Provider.
type Zitadel struct {
	issuer  string
	client  *zitadelClient
	user    zitadelUser
	store   *zitadelStore
	ep      op.Endpoints
	srv     *http.Server
	httpc   *http.Client // trusts our own certificate in HTTPS mode
	served  chan error
	closeMu sync.Mutex
	closed  bool

	countsMu sync.Mutex
	counts   Counts
}

var _ Provider = (*Zitadel)(nil)

// StartZitadel starts a zitadel provider for a test and stops it when the
// test ends.
func StartZitadel(t testing.TB, opts Options) Provider {
	if testing.Short() {
		t.Skip("starts a real provider (zitadel op); skipped with -short")
	}
	t.Helper()
	z, err := NewZitadel(opts)
	if err != nil {
		t.Fatalf("start zitadel provider: %v", err)
	}
	t.Cleanup(func() {
		if err := z.Close(); err != nil {
			t.Errorf("stop zitadel provider: %v", err)
		}
	})
	return z
}

func zitadelDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// NewZitadel starts a zitadel provider on 127.0.0.1 with a free port. It
// serves HTTPS when opts.CertFile and opts.KeyFile are set. Call Close to
// stop it.
func NewZitadel(opts Options) (*Zitadel, error) {
	accessTTL := zitadelDefault(opts.AccessTokenTTL, time.Hour)
	idTTL := zitadelDefault(opts.IDTokenTTL, time.Hour)
	deviceTTL := zitadelDefault(opts.DeviceCodeTTL, 10*time.Minute)
	// The interval is a whole number of seconds on the wire, and 0 would
	// be left out (clients then wait 5 s): round up, at least 1 s.
	interval := zitadelDefault(opts.Interval, time.Second)
	interval = ((interval + time.Second - 1) / time.Second) * time.Second

	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("providertest: CertFile and KeyFile go together")
	}
	var tlsConf *tls.Config
	httpc := &http.Client{Timeout: 30 * time.Second}
	scheme := "http"
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("providertest: load TLS key pair: %w", err)
		}
		pool, err := zitadelCertPool(opts.CertFile)
		if err != nil {
			return nil, err
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		httpc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		scheme = "https"
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("providertest: generate signing key: %w", err)
	}
	var cryptoKey [32]byte
	rand.Read(cryptoKey[:])

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("providertest: listen: %w", err)
	}
	issuer := scheme + "://" + ln.Addr().String()

	z := &Zitadel{
		issuer: issuer,
		client: &zitadelClient{
			id:         zitadelClientID,
			scopes:     []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess, oidc.ScopeProfile, oidc.ScopeEmail},
			idTokenTTL: idTTL,
		},
		user: zitadelUser{
			subject:    "alice",
			email:      "alice@example.test",
			name:       "Alice Example",
			givenName:  "Alice",
			familyName: "Example",
		},
		httpc:  httpc,
		served: make(chan error, 1),
		ep: op.Endpoints{
			Authorization:       op.NewEndpoint("/authorize"),
			Token:               op.NewEndpoint("/oauth/token"),
			Userinfo:            op.NewEndpoint("/userinfo"),
			Revocation:          op.NewEndpoint("/revoke"),
			JwksURI:             op.NewEndpoint("/keys"),
			DeviceAuthorization: op.NewEndpoint("/device_authorization"),
		},
	}
	clients := []*zitadelClient{z.client}
	if opts.PKCEClient {
		pkce := *z.client
		pkce.id, pkce.requirePKCE = PKCEClientID, true
		clients = append(clients, &pkce)
	}
	if opts.ClientSecret != "" {
		for _, c := range []struct {
			id     string
			method oidc.AuthMethod
			grants []oidc.GrantType
		}{
			{BasicClientID, oidc.AuthMethodBasic, nil},
			{PostClientID, oidc.AuthMethodPost, nil},
			{CIClientID, oidc.AuthMethodBasic, []oidc.GrantType{oidc.GrantTypeClientCredentials}},
		} {
			cc := *z.client
			cc.id, cc.secret, cc.authMethod, cc.grants = c.id, opts.ClientSecret, c.method, c.grants
			clients = append(clients, &cc)
		}
	}
	z.store = newZitadelStore(clients, z.user, &zitadelKey{id: zitadelRandom(8), key: rsaKey}, accessTTL)

	config := &op.Config{
		CryptoKey:             cryptoKey,
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedScopes:       z.client.scopes,
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     deviceTTL,
			PollInterval: interval,
			UserFormPath: zitadelVerifyPath,
			UserCode:     op.UserCodeBase20,
		},
	}
	provider, err := op.NewProvider(config, z.store, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("providertest: create op provider: %w", err)
	}
	server := &zitadelServer{
		LegacyServer:     op.NewLegacyServer(provider, z.ep),
		store:            z.store,
		audience:         opts.Audience,
		autoApprove:      opts.AutoApprove,
		subject:          z.user.subject,
		strictClientAuth: opts.StrictClientAuth,
	}
	opHandler := op.RegisterLegacyServer(server, http.NotFound)

	mux := http.NewServeMux()
	mux.Handle(zitadelVerifyPath, &zitadelVerifyPage{store: z.store, user: z.user, clientID: z.client.id})
	mux.Handle("/", opHandler)

	z.srv = &http.Server{
		Handler:           &zitadelCounter{next: mux, endpoints: z.ep, record: z.record},
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		var err error
		if tlsConf != nil {
			err = z.srv.ServeTLS(ln, "", "")
		} else {
			err = z.srv.Serve(ln)
		}
		z.served <- err
	}()
	return z, nil
}

func zitadelCertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("providertest: read certificate: %w", err)
	}
	pool := x509.NewCertPool()
	found := false
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("providertest: parse certificate: %w", err)
		}
		pool.AddCert(cert)
		found = true
	}
	if !found {
		return nil, fmt.Errorf("providertest: no certificate in %s", path)
	}
	return pool, nil
}

func (z *Zitadel) record(f func(*Counts)) {
	z.countsMu.Lock()
	defer z.countsMu.Unlock()
	f(&z.counts)
}

// Issuer is the issuer URL: scheme://127.0.0.1:port, no trailing slash.
func (z *Zitadel) Issuer() string   { return z.issuer }
func (z *Zitadel) ClientID() string { return z.client.id }
func (z *Zitadel) Subject() string  { return z.user.subject }
func (z *Zitadel) Email() string    { return z.user.email }

// VerificationURI is the page where a person approves a login.
func (z *Zitadel) VerificationURI() string { return z.issuer + zitadelVerifyPath }

// HTTPClient returns a client that trusts this provider's certificate.
func (z *Zitadel) HTTPClient() *http.Client { return z.httpc }

// Approve approves the device authorization with this user code as the
// test user, through the verification page as a browser would.
func (z *Zitadel) Approve(ctx context.Context, userCode string) error {
	return z.decide(ctx, userCode, "approve")
}

// Deny refuses it the same way.
func (z *Zitadel) Deny(ctx context.Context, userCode string) error {
	return z.decide(ctx, userCode, "deny")
}

func (z *Zitadel) decide(ctx context.Context, userCode, action string) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	browser := &http.Client{
		Transport: z.httpc.Transport,
		Jar:       jar,
		Timeout:   z.httpc.Timeout,
	}
	page := z.issuer + zitadelVerifyPath + "?user_code=" + url.QueryEscape(userCode)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, page, nil)
	if err != nil {
		return err
	}
	body, status, err := zitadelFetchPage(browser, req)
	if err != nil {
		return fmt.Errorf("providertest: open verification page: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("providertest: verification page: HTTP %d: %s", status, zitadelPageMessage(body))
	}
	csrf := zitadelFormValue(body, "csrf")
	if csrf == "" {
		return errors.New("providertest: verification page has no csrf field")
	}
	form := url.Values{"user_code": {userCode}, "csrf": {csrf}, "action": {action}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, z.issuer+zitadelVerifyPath, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body, status, err = zitadelFetchPage(browser, req)
	if err != nil {
		return fmt.Errorf("providertest: submit verification page: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("providertest: %s user code: HTTP %d: %s", action, status, zitadelPageMessage(body))
	}
	return nil
}

func zitadelFetchPage(c *http.Client, req *http.Request) (string, int, error) {
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), resp.StatusCode, err
}

// RevokeRefreshToken revokes a refresh token, and with it the login, at
// the provider's revocation endpoint (RFC 7009).
func (z *Zitadel) RevokeRefreshToken(ctx context.Context, refreshToken string) error {
	form := url.Values{
		"token":           {refreshToken},
		"token_type_hint": {"refresh_token"},
		"client_id":       {z.client.id},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, z.ep.Revocation.Absolute(z.issuer), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := z.httpc.Do(req)
	if err != nil {
		return fmt.Errorf("providertest: revoke: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("providertest: revoke: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// Counts reports the requests that reached the provider so far.
func (z *Zitadel) Counts(context.Context) (Counts, error) {
	z.countsMu.Lock()
	defer z.countsMu.Unlock()
	return z.counts, nil
}

// Close stops the server. It may be called more than once.
func (z *Zitadel) Close() error {
	z.closeMu.Lock()
	defer z.closeMu.Unlock()
	if z.closed {
		return nil
	}
	z.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var err error
	if z.srv.Shutdown(ctx) != nil {
		// A connection a client dialled but never used (Go's transport
		// keeps spare dials) holds Shutdown for 5 s, and a poll may be in
		// flight: a test provider just cuts them.
		err = z.srv.Close()
	}
	if serr := <-z.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
