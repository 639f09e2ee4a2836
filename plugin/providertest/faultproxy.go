package providertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultProxy is a reverse proxy for tests, put between a client and a
// provider's token endpoint: point the client's token endpoint at
// URL()+"/token" (the plugin's --token-endpoint) and the proxy forwards to
// the same path at the upstream. Every request is forwarded unchanged,
// except the ones a test arms a Rule for: the next request whose form
// carries the rule's grant_type is held, answered with a Fault, or both.
//
// A Fault REPLACES the provider's answer: the request is not forwarded, so
// the provider never sees that presentation of the refresh token (or device
// code). To the provider the refresh never happened, and a client that
// presents the same refresh token again later is not replaying it. A rule
// with HoldAnswer is the opposite: the provider has answered (and, for a
// refresh, rotated the token) before the test decides whether the client
// gets the answer.
//
// Every request is logged as an Exchange, with the SHA-256 of the refresh
// token it carried (never the value) and what the client was answered.
type FaultProxy struct {
	upstream *url.URL
	client   *http.Client
	srv      *httptest.Server
	closing  chan struct{}

	mu        sync.Mutex
	rules     []*Armed
	exchanges []Exchange
}

// Fault is an answer the proxy gives instead of the provider's.
type Fault string

// The faults. Only FaultInvalidGrant and FaultInvalidRequest are
// well-formed OAuth error answers (RFC 6749 §5.2: JSON with an "error"
// code); every other one is the kind of answer a broken or misconfigured
// server, a gateway or the network gives.
const (
	FaultNone             Fault = ""
	FaultNotFoundHTML     Fault = "404 HTML page"
	FaultRedirect         Fault = "307 redirect"
	FaultBadRequestNoCode Fault = "400 without an OAuth error code"
	FaultInternalError    Fault = "500"
	FaultBadGateway       Fault = "502"
	FaultUnavailable      Fault = "503"
	FaultInvalidGrant     Fault = "invalid_grant"
	FaultInvalidRequest   Fault = "invalid_request"
	FaultGarbage          Fault = "200 with garbage"
	// FaultTimeout holds the request without an answer until the client
	// gives up (or the proxy closes).
	FaultTimeout Fault = "timeout"
	// FaultReset resets the connection (TCP RST) without an answer.
	FaultReset Fault = "connection reset"
)

// Faults are all the faults, in a fixed order.
var Faults = []Fault{FaultNotFoundHTML, FaultRedirect, FaultBadRequestNoCode, FaultInternalError, FaultBadGateway,
	FaultUnavailable, FaultInvalidGrant, FaultInvalidRequest, FaultGarbage, FaultTimeout, FaultReset}

// OAuthError tells whether the fault is a well-formed OAuth error answer,
// and its code.
func (f Fault) OAuthError() (code string, ok bool) {
	switch f {
	case FaultInvalidGrant, FaultInvalidRequest:
		return string(f), true
	}
	return "", false
}

// Hold says when an armed request waits for Armed.Release.
type Hold int

const (
	// NoHold answers at once.
	NoHold Hold = iota
	// HoldRequest holds the request before it is forwarded (or faulted).
	// If the client goes away meanwhile, nothing is forwarded.
	HoldRequest
	// HoldAnswer forwards the request at once and holds the provider's
	// answer. If the client goes away meanwhile, the answer is lost.
	HoldAnswer
)

// Rule is what to do with the next matching request.
type Rule struct {
	// GrantType selects the request by its form's grant_type
	// ("refresh_token", "urn:ietf:params:oauth:grant-type:device_code");
	// empty matches any request.
	GrantType string
	Fault     Fault
	Hold      Hold
}

// Armed is a rule waiting for its request, or applied to it.
type Armed struct {
	Rule
	held, gone, done chan struct{}
	release          chan struct{}
	releaseOnce      sync.Once
}

// Held is closed once the matching request is held.
func (a *Armed) Held() <-chan struct{} { return a.held }

// ClientGone is closed when the held request's client has disconnected.
func (a *Armed) ClientGone() <-chan struct{} { return a.gone }

// Done is closed when the exchange is over.
func (a *Armed) Done() <-chan struct{} { return a.done }

// Release lets a held request go on. It may be called more than once.
func (a *Armed) Release() { a.releaseOnce.Do(func() { close(a.release) }) }

// Exchange is one request through the proxy and what the client got.
type Exchange struct {
	Seq       int
	Method    string
	Path      string
	GrantType string
	// RefreshTokenSHA256 is the hex SHA-256 of the refresh_token
	// parameter, if any.
	RefreshTokenSHA256 string
	// Fault is the fault answered instead of forwarding, if any.
	Fault Fault
	// Forwarded tells whether the provider saw the request.
	Forwarded bool
	// Status is the HTTP status sent to the client (0 when none was).
	Status int
	// OAuthError is the "error" code of a JSON answer sent to the client.
	OAuthError string
	// ClientGone: the client went away before it got an answer.
	ClientGone bool
}

// redirectedPath is where FaultRedirect points; requests to it are logged
// and answered 404, never forwarded.
const redirectedPath = "/__faultproxy/redirected"

// NewFaultProxy starts a proxy on 127.0.0.1 for upstream (a provider's
// origin, such as its issuer URL) and stops it when the test ends. rt
// reaches the upstream (nil: a default transport); redirects from the
// upstream are passed to the client, not followed.
func NewFaultProxy(t testing.TB, upstream string, rt http.RoundTripper) *FaultProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatalf("providertest: fault proxy upstream: %v", err)
	}
	if rt == nil {
		rt = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}
	}
	p := &FaultProxy{
		upstream: u,
		client: &http.Client{Transport: rt, Timeout: 2 * time.Minute,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		closing: make(chan struct{}),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

// URL is the proxy's origin.
func (p *FaultProxy) URL() string { return p.srv.URL }

// Arm queues a rule for the next matching request. Rules are used in the
// order they were armed, each once.
func (p *FaultProxy) Arm(r Rule) *Armed {
	a := &Armed{Rule: r, held: make(chan struct{}), gone: make(chan struct{}), done: make(chan struct{}), release: make(chan struct{})}
	if r.Hold == NoHold {
		a.Release()
	}
	p.mu.Lock()
	p.rules = append(p.rules, a)
	p.mu.Unlock()
	return a
}

// Disarm drops the rules no request has used yet and returns them.
func (p *FaultProxy) Disarm() []*Armed {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rules
	p.rules = nil
	return r
}

// Exchanges returns the exchanges from index after on.
func (p *FaultProxy) Exchanges(after int) []Exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	if after >= len(p.exchanges) {
		return nil
	}
	return append([]Exchange(nil), p.exchanges[after:]...)
}

// Close releases every held request and stops the proxy.
func (p *FaultProxy) Close() {
	select {
	case <-p.closing:
		return
	default:
	}
	close(p.closing)
	for _, a := range p.Disarm() {
		a.Release()
	}
	p.srv.CloseClientConnections()
	p.srv.Close()
}

func (p *FaultProxy) take(grantType string) *Armed {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, a := range p.rules {
		if a.GrantType == "" || a.GrantType == grantType {
			p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
			return a
		}
	}
	return nil
}

func (p *FaultProxy) log(x Exchange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	x.Seq = len(p.exchanges)
	p.exchanges = append(p.exchanges, x)
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	x := Exchange{Method: r.Method, Path: r.URL.Path}
	if form, err := url.ParseQuery(string(body)); err == nil {
		x.GrantType = form.Get("grant_type")
		if rt := form.Get("refresh_token"); rt != "" {
			sum := sha256.Sum256([]byte(rt))
			x.RefreshTokenSHA256 = hex.EncodeToString(sum[:])
		}
	}
	defer func() { p.log(x) }()
	if r.URL.Path == redirectedPath {
		x.Status = http.StatusNotFound
		http.NotFound(w, r)
		return
	}

	a := p.take(x.GrantType)
	if a != nil {
		defer close(a.done)
		go func() {
			select {
			case <-r.Context().Done():
				close(a.gone)
			case <-a.done:
			}
		}()
	}
	rule := Rule{}
	if a != nil {
		rule = a.Rule
	}
	wait := func() bool { // false: the client is gone
		close(a.held)
		select {
		case <-a.release:
		case <-p.closing:
		}
		return r.Context().Err() == nil
	}
	if rule.Fault != FaultNone || rule.Hold == HoldRequest {
		if a != nil && rule.Hold != NoHold && !wait() {
			x.ClientGone = true
			return
		}
		if rule.Fault != FaultNone {
			x.Fault = rule.Fault
			p.fault(w, r, &x)
			return
		}
	}

	resp, err := p.forward(r, body)
	x.Forwarded = true
	if err != nil {
		x.Status = http.StatusBadGateway
		http.Error(w, "fault proxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if rule.Hold == HoldAnswer && !wait() {
		x.ClientGone = true
		return
	}
	for k, vs := range resp.Header {
		if k == "Content-Length" || k == "Connection" || k == "Transfer-Encoding" {
			continue
		}
		w.Header()[k] = vs
	}
	x.Status = resp.StatusCode
	x.OAuthError = oauthErrorCode(answer)
	w.WriteHeader(resp.StatusCode)
	w.Write(answer)
}

func (p *FaultProxy) forward(r *http.Request, body []byte) (*http.Response, error) {
	u := *p.upstream
	u.Path = strings.TrimRight(u.Path, "/") + r.URL.Path
	u.RawQuery = r.URL.RawQuery
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		if k == "Connection" || k == "Content-Length" {
			continue
		}
		req.Header[k] = vs
	}
	return p.client.Do(req)
}

// fault writes f's answer.
func (p *FaultProxy) fault(w http.ResponseWriter, r *http.Request, x *Exchange) {
	text := func(status int, ctype, body string) {
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		io.WriteString(w, body)
		x.Status = status
		x.OAuthError = oauthErrorCode([]byte(body))
	}
	page := func(status int, title string) {
		text(status, "text/html; charset=utf-8", "<!DOCTYPE html><html><head><title>"+title+"</title></head><body><h1>"+title+"</h1></body></html>\n")
	}
	switch x.Fault {
	case FaultNotFoundHTML:
		page(http.StatusNotFound, "404 Not Found")
	case FaultRedirect:
		w.Header().Set("Location", p.srv.URL+redirectedPath)
		page(http.StatusTemporaryRedirect, "307 Temporary Redirect")
	case FaultBadRequestNoCode:
		text(http.StatusBadRequest, "application/json", `{"message":"Bad Request","status":400}`)
	case FaultInternalError:
		page(http.StatusInternalServerError, "500 Internal Server Error")
	case FaultBadGateway:
		page(http.StatusBadGateway, "502 Bad Gateway")
	case FaultUnavailable:
		page(http.StatusServiceUnavailable, "503 Service Unavailable")
	case FaultInvalidGrant, FaultInvalidRequest:
		w.Header().Set("Cache-Control", "no-store")
		text(http.StatusBadRequest, "application/json", `{"error":"`+string(x.Fault)+`","error_description":"answered by the test's fault proxy"}`)
	case FaultGarbage:
		text(http.StatusOK, "application/json", "\x00\x1f)]}'\n<html>this is not a token response{\"access_tok")
	case FaultTimeout:
		select {
		case <-r.Context().Done():
			x.ClientGone = true
		case <-p.closing:
		}
	case FaultReset:
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic("providertest: fault proxy: cannot hijack the connection")
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		conn.Close()
	default:
		panic("providertest: unknown fault " + string(x.Fault))
	}
}

// oauthErrorCode is the "error" member of a JSON body, if it is one.
func oauthErrorCode(body []byte) string {
	var v struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.Error
}
