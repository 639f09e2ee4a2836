package providertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The Node provider's fixed identities (see testdata/oidc-provider/server.mjs).
const (
	nodeClientID     = "kubectl-device-login"
	nodeSubject      = "alice"
	nodeEmail        = "alice@example.test"
	nodeName         = "Alice Example"
	nodePassword     = "alice-password"
	nodeIssuerPrefix = "OIDC_PROVIDER_ISSUER="
	nodeNpmCI        = "npm ci --prefix plugin/providertest/testdata/oidc-provider"
)

// oidc-provider 9.13.3's routes, relative to the issuer.
const (
	nodeTokenPath        = "/token"
	nodeRevocationPath   = "/token/revocation"
	nodeVerificationPath = "/device"
	nodeCountsPath       = "/__test/counts"
	nodeUserCodesPath    = "/__test/user-codes"
	nodeTokensPath       = "/__test/tokens"
	nodePresentedPath    = "/__test/refresh-presentations"
	nodeRefreshTokenPath = "/__test/refresh-token"
)

// nodeDir is the directory holding server.mjs and its node_modules, found
// from this source file so that tests of any package can start the provider.
func nodeDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("providertest: cannot locate node.go")
	}
	return filepath.Join(filepath.Dir(file), "testdata", "oidc-provider"), nil
}

// StartNode starts npm's oidc-provider (testdata/oidc-provider/server.mjs)
// under Node on 127.0.0.1 and stops it when the test ends. It needs node on
// PATH and the npm packages installed:
//
//	npm ci --prefix plugin/providertest/testdata/oidc-provider
//
// The client may ask for Options.Audience by sending resource=AUDIENCE (or
// audience=AUDIENCE) on the device authorization request.
//
// The provider it returns is also a Ledger: what it issued and which
// refresh tokens were presented to it, as the provider itself saw them.
func StartNode(t testing.TB, opts Options) Provider {
	if testing.Short() {
		t.Skip("starts npm oidc-provider under Node; skipped with -short")
	}
	t.Helper()
	p, err := startNode(t, opts)
	if err != nil {
		t.Fatalf("providertest: starting oidc-provider: %v", err)
	}
	return p
}

type nodeConfig struct {
	Port             int    `json:"port"`
	ClientID         string `json:"clientId"`
	Subject          string `json:"subject"`
	Email            string `json:"email"`
	Name             string `json:"name"`
	Password         string `json:"password"`
	AccessTokenTTL   int    `json:"accessTokenTTL,omitempty"`
	IDTokenTTL       int    `json:"idTokenTTL,omitempty"`
	DeviceCodeTTL    int    `json:"deviceCodeTTL,omitempty"`
	Interval         int    `json:"interval"`
	CertFile         string `json:"certFile,omitempty"`
	KeyFile          string `json:"keyFile,omitempty"`
	Audience         string `json:"audience,omitempty"`
	ClientSecret     string `json:"clientSecret,omitempty"`
	BasicClientID    string `json:"basicClientId,omitempty"`
	PostClientID     string `json:"postClientId,omitempty"`
	CIClientID       string `json:"ciClientId,omitempty"`
	PKCEClientID     string `json:"pkceClientId,omitempty"`
	StrictClientAuth bool   `json:"strictClientAuth,omitempty"`
	ExitOnStdinClose bool   `json:"exitOnStdinClose"`
}

// nodeSeconds rounds d up to whole seconds; zero stays zero (server default).
func nodeSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

func startNode(t testing.TB, opts Options) (*nodeProvider, error) {
	dir, err := nodeDir()
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node (Node.js 20 or later) is not on PATH: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		return nil, fmt.Errorf("npm packages are not installed (%v); run `%s` from the repository root", err, nodeNpmCI)
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("Options.CertFile and Options.KeyFile must be set together")
	}

	cfg := nodeConfig{
		ClientID:         nodeClientID,
		Subject:          nodeSubject,
		Email:            nodeEmail,
		Name:             nodeName,
		Password:         nodePassword,
		AccessTokenTTL:   nodeSeconds(opts.AccessTokenTTL),
		IDTokenTTL:       nodeSeconds(opts.IDTokenTTL),
		DeviceCodeTTL:    nodeSeconds(opts.DeviceCodeTTL),
		Interval:         nodeSeconds(opts.Interval),
		Audience:         opts.Audience,
		ExitOnStdinClose: true,
	}
	if opts.ClientSecret != "" {
		cfg.ClientSecret, cfg.BasicClientID, cfg.PostClientID, cfg.CIClientID = opts.ClientSecret, BasicClientID, PostClientID, CIClientID
	}
	cfg.StrictClientAuth = opts.StrictClientAuth
	if opts.PKCEClient {
		cfg.PKCEClientID = PKCEClientID
	}
	if cfg.Interval == 0 {
		cfg.Interval = 1
	}
	transport := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	if opts.CertFile != "" {
		if cfg.CertFile, err = filepath.Abs(opts.CertFile); err != nil {
			return nil, err
		}
		if cfg.KeyFile, err = filepath.Abs(opts.KeyFile); err != nil {
			return nil, err
		}
		pemBytes, err := os.ReadFile(cfg.CertFile)
		if err != nil {
			return nil, err
		}
		// Trust the served certificate (and any CA in the same file).
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("no certificate in %s", cfg.CertFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}

	cmd := exec.Command(node, "server.mjs", string(cfgJSON))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_ENV=test")
	stdin, err := cmd.StdinPipe() // held open: the server exits when we die
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	logs := &SyncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &nodeProvider{
		tb:        t,
		clientID:  nodeClientID,
		cmd:       cmd,
		stdin:     stdin,
		logs:      logs,
		exited:    make(chan struct{}),
		transport: transport,
	}
	p.client = &http.Client{
		Transport: transport,
		// The harness's own API calls never follow redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	// Stop the process however this function ends, and at the end of the test.
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("providertest: stopping oidc-provider: %v", err)
		}
		if t.Failed() {
			t.Logf("oidc-provider stderr:\n%s", p.logs.String())
		}
		p.logAutoApproveErrors()
	})

	issuer := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if !found && strings.HasPrefix(line, nodeIssuerPrefix) {
				found = true
				issuer <- strings.TrimPrefix(line, nodeIssuerPrefix)
				continue
			}
			fmt.Fprintf(logs, "stdout: %s\n", line)
		}
		close(issuer)
	}()
	select {
	case iss, ok := <-issuer:
		if !ok {
			<-p.exited
			return nil, fmt.Errorf("server exited before listening (%v); stderr:\n%s", p.waitErr, logs.String())
		}
		p.issuer = iss
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("server did not print its issuer within 60s; stderr:\n%s", logs.String())
	}

	if opts.AutoApprove {
		ctx, cancel := context.WithCancel(context.Background())
		p.stopAuto = cancel
		p.autoDone = make(chan struct{})
		go p.autoApprove(ctx)
	}
	return p, nil
}

type nodeProvider struct {
	tb        testing.TB
	issuer    string
	clientID  string
	cmd       *exec.Cmd
	stdin     io.Closer
	logs      *SyncBuffer
	exited    chan struct{}
	waitErr   error // set before exited is closed
	transport *http.Transport
	client    *http.Client

	stopAuto context.CancelFunc
	autoDone chan struct{}

	mu       sync.Mutex
	autoErrs []error

	closeOnce sync.Once
	closeErr  error
}

func (p *nodeProvider) Issuer() string   { return p.issuer }
func (p *nodeProvider) ClientID() string { return p.clientID }
func (p *nodeProvider) Subject() string  { return nodeSubject }
func (p *nodeProvider) Email() string    { return nodeEmail }

// Close stops the auto-approver, then the server: SIGTERM, and a kill if it
// has not exited after 5 s.
func (p *nodeProvider) Close() error {
	p.closeOnce.Do(func() {
		if p.stopAuto != nil {
			p.stopAuto()
			<-p.autoDone
		}
		p.transport.CloseIdleConnections()
		select {
		case <-p.exited:
			p.closeErr = fmt.Errorf("server had already exited: %v", p.waitErr)
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			_ = p.cmd.Process.Kill()
		}
		select {
		case <-p.exited:
			if p.waitErr != nil {
				p.closeErr = fmt.Errorf("server exit: %v", p.waitErr)
			}
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.closeErr = errors.New("server ignored SIGTERM for 5s and was killed")
		}
		_ = p.stdin.Close()
	})
	return p.closeErr
}

// autoApprove approves every user code the server issues, through the same
// browser-like flow as Approve. The server long-polls new codes.
func (p *nodeProvider) autoApprove(ctx context.Context) {
	defer close(p.autoDone)
	var wg sync.WaitGroup
	defer wg.Wait()
	next := 0
	for ctx.Err() == nil {
		var page struct {
			Next      int      `json:"next"`
			UserCodes []string `json:"user_codes"`
		}
		err := p.getJSON(ctx, fmt.Sprintf("%s?after=%d", nodeUserCodesPath, next), &page)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.recordAutoErr(fmt.Errorf("watching user codes: %w", err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		next = page.Next
		for _, code := range page.UserCodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				actx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				if err := p.Approve(actx, code); err != nil && ctx.Err() == nil {
					p.recordAutoErr(fmt.Errorf("auto-approving %s: %w", code, err))
				}
			}()
		}
	}
}

func (p *nodeProvider) recordAutoErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.autoErrs = append(p.autoErrs, err)
}

func (p *nodeProvider) logAutoApproveErrors() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, err := range p.autoErrs {
		p.tb.Logf("providertest: %v", err)
	}
}

func (p *nodeProvider) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.issuer+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

func (p *nodeProvider) Counts(ctx context.Context) (Counts, error) {
	var c Counts
	err := p.getJSON(ctx, nodeCountsPath, &c)
	return c, err
}

// RevokeRefreshToken revokes the token at the RFC 7009 endpoint as the
// public client. oidc-provider then revokes the whole grant: every access
// and refresh token issued from that device authorization.
func (p *nodeProvider) RevokeRefreshToken(ctx context.Context, refreshToken string) error {
	form := url.Values{
		"token":           {refreshToken},
		"token_type_hint": {"refresh_token"},
		"client_id":       {p.clientID},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.issuer+nodeRevocationPath, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation: %s: %s", resp.Status, body)
	}
	return nil
}

func (p *nodeProvider) Approve(ctx context.Context, userCode string) error {
	return p.browse(ctx, userCode, true)
}

func (p *nodeProvider) Deny(ctx context.Context, userCode string) error {
	return p.browse(ctx, userCode, false)
}

// Page markers of oidc-provider's default device pages and of server.mjs's
// login and consent pages.
const (
	nodeSuccessTitle     = "<title>Sign-in Success</title>"
	nodeInterruptedText  = "The Sign-in request was interrupted"
	nodeWrongCodeText    = "The code you entered is incorrect"
	nodeDeviceConfirmID  = "op.deviceConfirmForm"
	nodeLoginFormID      = "login"
	nodeConsentFormID    = "consent"
	nodeDenyFormID       = "deny"
	nodeMaxBrowserSteps  = 12
	nodeMaxPageBodyBytes = 1 << 20
)

// browse does what a person with a browser does: open the verification URI
// with the user code, submit the auto-submitting form, confirm the code, sign
// in as the test user and allow (or deny) the client.
func (p *nodeProvider) browse(ctx context.Context, userCode string, approve bool) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	browser := &http.Client{Transport: p.transport, Jar: jar}
	verify := p.issuer + nodeVerificationPath + "?" + url.Values{"user_code": {userCode}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, verify, nil)
	if err != nil {
		return err
	}
	what := "approve"
	if !approve {
		what = "deny"
	}
	for step := 0; step < nodeMaxBrowserSteps; step++ {
		resp, err := browser.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, userCode, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, nodeMaxPageBodyBytes))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: reading %s: %w", what, userCode, resp.Request.URL, err)
		}
		page := string(body)
		forms := nodeParseForms(page)
		var next *nodeHtmlForm
		switch {
		case strings.Contains(page, nodeSuccessTitle):
			if !approve {
				return fmt.Errorf("deny %s: the provider reports a successful sign-in", userCode)
			}
			return nil
		case strings.Contains(page, nodeInterruptedText):
			if approve {
				return fmt.Errorf("approve %s: the provider reports the sign-in was interrupted", userCode)
			}
			return nil
		case strings.Contains(page, nodeWrongCodeText):
			return fmt.Errorf("%s %s: the provider does not know this user code (or it expired or was used)", what, userCode)
		case forms.byID(nodeLoginFormID) != nil:
			next = forms.byID(nodeLoginFormID)
			next.set("login", nodeSubject)
			next.set("password", nodePassword)
		case forms.byID(nodeConsentFormID) != nil:
			if approve {
				next = forms.byID(nodeConsentFormID)
			} else {
				next = forms.byID(nodeDenyFormID)
			}
		case forms.byID(nodeDeviceConfirmID) != nil:
			next = forms.byID(nodeDeviceConfirmID)
		case len(forms) == 1 && strings.EqualFold(forms[0].method, "post") && forms[0].id == "":
			// The form_post page that a browser submits with JavaScript.
			next = &forms[0]
		}
		if next == nil {
			return fmt.Errorf("%s %s: unexpected page at %s (%s): %s", what, userCode, resp.Request.URL, resp.Status, nodePageText(page))
		}
		action, err := resp.Request.URL.Parse(next.action)
		if err != nil {
			return fmt.Errorf("%s %s: form action %q: %w", what, userCode, next.action, err)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(next.values.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return fmt.Errorf("%s %s: no result page after %d steps", what, userCode, nodeMaxBrowserSteps)
}

type nodeHtmlForm struct {
	id, action, method string
	values             url.Values
}

func (f *nodeHtmlForm) set(name, value string) { f.values.Set(name, value) }

type nodeHtmlForms []nodeHtmlForm

func (fs nodeHtmlForms) byID(id string) *nodeHtmlForm {
	for i := range fs {
		if fs[i].id == id {
			return &fs[i]
		}
	}
	return nil
}

var (
	nodeFormRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	nodeInputRE = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	nodeAttrRE  = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
	nodeTagRE   = regexp.MustCompile(`(?s)<style.*?</style>|<script.*?</script>|<[^>]*>`)
	nodeSpaceRE = regexp.MustCompile(`\s+`)
)

func nodeAttrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range nodeAttrRE.FindAllStringSubmatch(s, -1) {
		v := a[2]
		if v == "" {
			v = a[3]
		}
		m[strings.ToLower(a[1])] = html.UnescapeString(v)
	}
	return m
}

// nodeParseForms finds the forms of a page and their input fields, enough for
// the pages of oidc-provider and server.mjs (quoted attributes, no nesting).
func nodeParseForms(page string) nodeHtmlForms {
	var forms nodeHtmlForms
	for _, m := range nodeFormRE.FindAllStringSubmatch(page, -1) {
		a := nodeAttrs(m[1])
		f := nodeHtmlForm{id: a["id"], action: a["action"], method: a["method"], values: url.Values{}}
		for _, in := range nodeInputRE.FindAllStringSubmatch(m[2], -1) {
			ia := nodeAttrs(in[1])
			if name := ia["name"]; name != "" {
				f.values.Set(name, ia["value"])
			}
		}
		forms = append(forms, f)
	}
	return forms
}

// nodePageText is a short plain-text excerpt of a page, for error messages.
func nodePageText(page string) string {
	s := strings.TrimSpace(nodeSpaceRE.ReplaceAllString(html.UnescapeString(nodeTagRE.ReplaceAllString(page, " ")), " "))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// SyncBuffer is a buffer a running process writes to while a test reads
// it: the output of the Node server, of the plugin processes the tests
// start. It keeps the first 4 MiB, so that memory stays bounded in long
// runs.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p (or drops it, past 4 MiB).
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 4<<20 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

// String is what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Ledger is what a provider reports about the tokens it handled, counted
// by the provider itself (StartNode's provider implements it): tests use
// it to check a client from the outside, e.g. that no refresh token is
// ever presented twice, that no token it issued appears where none may,
// and that a logout really revoked the session.
type Ledger interface {
	// Issued returns the secrets issued from index after on (access,
	// refresh and ID tokens from the token endpoint, and device codes),
	// and the index to ask from next time.
	Issued(ctx context.Context, after int) ([]IssuedToken, int, error)
	// Presentations returns every refresh token presented to the token
	// endpoint so far, by the hex SHA-256 of its value.
	Presentations(ctx context.Context) (map[string]Presentation, error)
	// RefreshTokenState tells whether the provider would still honour
	// the refresh token with this hex SHA-256, without spending it.
	RefreshTokenState(ctx context.Context, sha256Hex string) (RefreshTokenState, error)
}

// IssuedToken is one secret a provider handed out.
type IssuedToken struct {
	Seq int `json:"seq"`
	// Kind is access_token, refresh_token, id_token or device_code.
	Kind   string `json:"kind"`
	Value  string `json:"value"`
	SHA256 string `json:"sha256"`
	// GrantType is the token request's grant_type (device_authorization
	// for device codes).
	GrantType string `json:"grant_type"`
	GrantID   string `json:"grant_id"`
	// ExpiresAt is the access token's expiry (Unix seconds), as the
	// provider announced it; zero for other kinds.
	ExpiresAt int64 `json:"expires_at"`
}

// Presentation counts how often one refresh token reached the token
// endpoint, and what became of it.
type Presentation struct {
	Presented int `json:"presented"`
	Succeeded int `json:"succeeded"`
	// Errors are the error codes of the failed presentations (or "HTTP n").
	Errors []string `json:"errors"`
}

// RefreshTokenState is a refresh token as the provider's storage holds it.
type RefreshTokenState struct {
	// Known is false for a value this provider never issued.
	Known bool `json:"known"`
	// Active: a refresh with it would succeed now.
	Active bool `json:"active"`
	// State is active, consumed (rotated), revoked (the token or its
	// grant is gone), expired or unknown.
	State string `json:"state"`
}

func (p *nodeProvider) Issued(ctx context.Context, after int) ([]IssuedToken, int, error) {
	var page struct {
		Next   int           `json:"next"`
		Tokens []IssuedToken `json:"tokens"`
	}
	err := p.getJSON(ctx, fmt.Sprintf("%s?after=%d", nodeTokensPath, after), &page)
	return page.Tokens, page.Next, err
}

func (p *nodeProvider) Presentations(ctx context.Context) (map[string]Presentation, error) {
	m := map[string]Presentation{}
	err := p.getJSON(ctx, nodePresentedPath, &m)
	return m, err
}

func (p *nodeProvider) RefreshTokenState(ctx context.Context, sha256Hex string) (RefreshTokenState, error) {
	var st RefreshTokenState
	err := p.getJSON(ctx, nodeRefreshTokenPath+"?"+url.Values{"sha256": {sha256Hex}}.Encode(), &st)
	return st, err
}

var _ Ledger = (*nodeProvider)(nil)
