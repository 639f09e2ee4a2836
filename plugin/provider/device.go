package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

const (
	deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"
	// defaultInterval is RFC 8628's polling interval when none is given.
	defaultInterval = 5 * time.Second
	maxInterval     = time.Minute
	// defaultCodeLifetime is assumed when the provider omits expires_in
	// (which RFC 8628 requires); maxCodeLifetime bounds the wait.
	defaultCodeLifetime = 10 * time.Minute
	maxCodeLifetime     = time.Hour
	// maxBackoff bounds the wait between polls while the provider fails.
	maxBackoff = 30 * time.Second
	// maxShown bounds the length of a code or address shown to a person.
	maxShown = 512
)

// DeviceLogin is a device authorization the person has to approve.
type DeviceLogin struct {
	// UserCode is the code to enter, exactly as the provider gave it
	// (free of control characters).
	UserCode string
	// VerificationURI is where to enter it; VerificationURIComplete, when
	// not empty, already carries the code.
	VerificationURI         string
	VerificationURIComplete string
	// Expiry is when the code stops working (by the client's clock).
	Expiry time.Time
	// Interval is the polling interval.
	Interval time.Duration

	endpoints  Endpoints
	deviceCode string
	verifier   string // PKCE code_verifier, if a challenge was sent
	style      oauth2.AuthStyle
}

// StartDeviceLogin sends the device authorization request (RFC 8628 §3.1)
// and checks the answer. With PKCEAlways it carries an S256 code_challenge
// (RFC 7636), whose code_verifier Poll sends. With PKCEAuto it carries
// none unless the provider refuses the request for want of one: then it
// is sent once more with a challenge. Discovery's
// code_challenge_methods_supported is not asked: providers list it for the
// authorization code flow, and say nothing there of the device flow.
func (c *Client) StartDeviceLogin(ctx context.Context) (*DeviceLogin, error) {
	ep, err := c.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	style := c.authStyle(ctx)
	d, err := c.startDeviceLogin(ctx, ep, style, c.PKCE == PKCEAlways)
	if err != nil && (c.PKCE == PKCEAuto || c.PKCE == "") && requiresPKCE(err) {
		c.logf("the provider requires PKCE for this client; asking again with a PKCE challenge")
		d, err = c.startDeviceLogin(ctx, ep, style, true)
	}
	if err == nil {
		return d, nil
	}
	var oe *OAuthError
	switch {
	case ctx.Err() != nil:
		// Interrupted: not an HTTP client timeout, which says where.
		return nil, ctx.Err()
	case c.PKCE == PKCENever && requiresPKCE(err):
		return nil, fmt.Errorf("the provider refused to start a device login: %w; it requires PKCE for this client, so leave out --pkce=never", err)
	case ClientAuthRejected(err):
		return nil, fmt.Errorf("the provider refused to start a device login: %w; %s", err, c.authAdvice(style))
	case errors.As(err, &oe):
		return nil, fmt.Errorf("the provider refused to start a device login: %w; check --client-id, --scope and --extra-param, and that the client may use the device flow", err)
	}
	return nil, fmt.Errorf("cannot start a device login at %s: %w", terminal.Sanitize(ep.DeviceAuthorization, 200), err)
}

// startDeviceLogin sends one device authorization request, with a PKCE
// challenge when pkce is set. Its errors are classified but not explained.
func (c *Client) startDeviceLogin(ctx context.Context, ep Endpoints, style oauth2.AuthStyle, pkce bool) (*DeviceLogin, error) {
	oc := c.oauth2Config(ep, style)
	var params []oauth2.AuthCodeOption
	for name, value := range c.extraParams() {
		params = append(params, oauth2.SetAuthURLParam(name, value))
	}
	var verifier string
	if pkce {
		verifier = oauth2.GenerateVerifier()
		params = append(params, oauth2.S256ChallengeOption(verifier))
		c.logf("sending a PKCE challenge (S256)")
	}
	hc := followingRedirects(c.HTTP, c.ClientSecret != "")
	if c.ClientSecret != "" {
		// x/oauth2 sends no client credentials with the device
		// authorization request; confidential clients need them.
		if style == oauth2.AuthStyleInParams {
			params = append(params, oauth2.SetAuthURLParam("client_secret", c.ClientSecret))
		} else {
			hc = withBasicAuth(hc, c.ClientID, c.ClientSecret)
		}
	}
	c.logf("requesting a device code from %s", ep.DeviceAuthorization)
	sent := time.Now()
	rctx := context.WithValue(ctx, oauth2.HTTPClient, hc)
	da, err := oc.DeviceAuth(rctx, params...)
	if err != nil {
		return nil, classify(ctx, ep.DeviceAuthorization, err)
	}
	d, err := c.checkDeviceAuth(da, sent)
	if err != nil {
		return nil, err
	}
	d.endpoints, d.verifier, d.style = ep, verifier, style
	return d, nil
}

// requiresPKCE tells whether err is a refusal that asks for PKCE: an
// invalid_request whose description names the code challenge or PKCE, as
// RFC 7636 §4.4.1 suggests ("code challenge required") and as Keycloak
// answers a client whose PKCE method is set ("Missing parameter:
// code_challenge_method"). Nothing else in a refusal says so.
func requiresPKCE(err error) bool {
	var oe *OAuthError
	if !errors.As(err, &oe) || oe.Code != "invalid_request" {
		return false
	}
	d := strings.NewReplacer("_", " ", "-", " ").Replace(strings.ToLower(oe.Description))
	return strings.Contains(d, "code challenge") || strings.Contains(d, "pkce") || strings.Contains(d, "proof key")
}

// basicAuth adds an HTTP Basic Authorization header to every request.
type basicAuth struct {
	next       http.RoundTripper
	id, secret string
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	setBasicAuth(r, b.id, b.secret)
	return b.next.RoundTrip(r)
}

// setBasicAuth authenticates r as the client with HTTP Basic
// (client_secret_basic).
func setBasicAuth(r *http.Request, id, secret string) {
	// RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
}

func withBasicAuth(hc *http.Client, id, secret string) *http.Client {
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c := *hc
	c.Transport = basicAuth{next, id, secret}
	return &c
}

// checkDeviceAuth checks the provider's answer and converts it.
func (c *Client) checkDeviceAuth(da *oauth2.DeviceAuthResponse, sent time.Time) (*DeviceLogin, error) {
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return nil, &badAnswerError{"to the device authorization request lacks a device_code, user_code or verification_uri; it does not follow RFC 8628"}
	}
	if !webURL(da.VerificationURI) {
		return nil, fmt.Errorf("the provider's verification_uri %q is not an http(s) URL", terminal.Sanitize(da.VerificationURI, 200))
	}
	d := &DeviceLogin{
		UserCode:        terminal.Sanitize(da.UserCode, maxShown),
		VerificationURI: terminal.Sanitize(da.VerificationURI, maxShown),
		deviceCode:      da.DeviceCode,
	}
	switch {
	case d.UserCode == "":
		return nil, fmt.Errorf("the provider's user_code has no printable characters")
	case strings.HasSuffix(d.UserCode, "…") || strings.HasSuffix(d.VerificationURI, "…"):
		// A cut code or address would send the person astray.
		return nil, fmt.Errorf("the provider's user_code or verification_uri is implausibly long (over %d characters)", maxShown)
	}
	if complete := terminal.Sanitize(da.VerificationURIComplete, maxShown); webURL(da.VerificationURIComplete) && !strings.HasSuffix(complete, "…") {
		d.VerificationURIComplete = complete
	}
	lifetime := defaultCodeLifetime
	if !da.Expiry.IsZero() {
		// x/oauth2 turned expires_in into a time on the wall clock.
		lifetime = da.Expiry.Sub(sent).Round(time.Second)
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("the provider's device code expired as it was issued (expires_in ≤ 0)")
	}
	d.Expiry = c.clock().Now().Add(min(lifetime, maxCodeLifetime))
	d.Interval = defaultInterval
	if da.Interval > 0 {
		d.Interval = time.Duration(min(da.Interval, int64(maxInterval/time.Second))) * time.Second
	}
	return d, nil
}

func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// Progress is told how the wait for approval goes: terminal.Terminal
// implements it.
type Progress interface {
	// IsTerminal tells whether Waiting is worth calling every second.
	IsTerminal() bool
	// Waiting is called before each wait with the code's time left.
	Waiting(left time.Duration, now time.Time)
	// EndWait is called when the wait is over.
	EndWait()
	// Notef tells the person something while waiting.
	Notef(format string, args ...any)
}

// Poll asks the token endpoint until the person approves, the code
// expires, or the provider gives a final answer (RFC 8628 §3.4, §3.5).
// Network failures, 5xx and garbled answers are retried with a growing
// pause until the code expires; the code's expiry is kept here, since
// some providers (Ory Hydra) never answer expired_token.
func (c *Client) Poll(ctx context.Context, d *DeviceLogin, p Progress) (*Token, error) {
	defer p.EndWait()
	clock := c.clock()
	oc := c.oauth2Config(d.endpoints, d.style)
	opts := []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("grant_type", deviceCodeGrant),
		oauth2.SetAuthURLParam("device_code", d.deviceCode),
	}
	if d.verifier != "" {
		opts = append(opts, oauth2.VerifierOption(d.verifier))
	}
	interval := d.Interval
	wait := interval
	failures := 0
	var lastProblem error
	for {
		left := d.Expiry.Sub(clock.Now())
		if left <= 0 {
			if lastProblem != nil {
				return nil, fmt.Errorf("the code expired while the provider kept failing (last: %w); check the provider and run the command again", lastProblem)
			}
			return nil, errors.New("the code expired before the sign-in was approved; run the command again to get a new code")
		}
		if err := c.wait(ctx, d, min(wait, left), p); err != nil {
			return nil, err
		}
		if !clock.Now().Before(d.Expiry) {
			continue
		}
		sent := clock.Now()
		// Exchange with the device_code grant: one request, no loop
		// inside x/oauth2, so the waiting stays on this clock. An empty
		// code parameter is the same as an absent one (RFC 6749 §3.2).
		tok, err := oc.Exchange(c.context(ctx), "", opts...)
		if err == nil {
			return c.token(tok, sent, d.endpoints), nil
		}
		err = classify(ctx, d.endpoints.Token, err)
		var oe *OAuthError
		switch {
		case ctx.Err() != nil:
			// Only the caller's context ends the wait: a request that
			// timed out (whose error also matches DeadlineExceeded) is
			// retried below like any passing fault.
			return nil, ctx.Err()
		case errors.As(err, &oe) && oe.Code == "authorization_pending":
			wait = interval
		case errors.As(err, &oe) && oe.Code == "slow_down":
			// RFC 8628 §3.5: add 5 s to this and every later wait.
			interval = min(interval+5*time.Second, maxInterval)
			wait = interval
			c.logf("the provider asked to slow down; polling every %s", interval)
		case errors.As(err, &oe) && oe.Code == "access_denied":
			return nil, errors.New("the sign-in was denied at the provider; run the command again if that was a mistake")
		case errors.As(err, &oe) && oe.Code == "expired_token":
			return nil, errors.New("the code expired before the sign-in was approved; run the command again to get a new code")
		case ClientAuthRejected(err):
			return nil, fmt.Errorf("the device login failed: %w; %s", err, c.authAdvice(d.style))
		case errors.As(err, &oe) && !oe.Retryable():
			return nil, fmt.Errorf("the device login failed: %w; check the client's settings at the provider", err)
		case !Retryable(err):
			// An answer that will not change by waiting (a redirect, a
			// 404, a refused certificate): no point polling on.
			return nil, fmt.Errorf("the device login failed: %w", err)
		default:
			failures++
			lastProblem = err
			wait = max(min(interval<<min(failures, 4), maxBackoff), interval)
			if failures == 1 {
				p.Notef("%v; retrying, the code stays valid until %s", err, d.Expiry.Local().Format(time.TimeOnly))
			}
			continue
		}
		if failures > 0 {
			p.Notef("the provider answers again; still waiting for approval")
		}
		failures, lastProblem = 0, nil
	}
}

// wait sleeps for d between polls, telling p every second when it is a
// terminal.
func (c *Client) wait(ctx context.Context, dl *DeviceLogin, d time.Duration, p Progress) error {
	clock := c.clock()
	end := clock.Now().Add(d)
	for {
		now := clock.Now()
		p.Waiting(dl.Expiry.Sub(now), now)
		step := end.Sub(now)
		if p.IsTerminal() {
			step = min(step, time.Second)
		}
		if step <= 0 {
			return nil
		}
		if err := clock.Sleep(ctx, step); err != nil {
			return err
		}
		if !p.IsTerminal() {
			return nil
		}
	}
}
