package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicelogin/kubectl-device-login/cache"
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

// Authorization is a device authorization the person has to approve.
type Authorization struct {
	// UserCode is the code to enter, exactly as the provider gave it.
	UserCode string
	// VerificationURI is where to enter it; VerificationURIComplete, when
	// not empty, already carries the code.
	VerificationURI         string
	VerificationURIComplete string
	// Expiry is when the code stops working (by the plugin's clock).
	Expiry time.Time
	// Interval is the polling interval.
	Interval time.Duration
}

// errLoginFailed marks device logins that ended without a token because
// of the person or the code (denied, expired), not the machinery.
var errLoginFailed = errors.New("device login failed")

// deviceLogin runs the Device Authorization Grant: it asks the provider
// for a code, shows it on stderr, and polls until the person approves.
func (c *config) deviceLogin(ctx context.Context) (*cache.Entry, error) {
	ep, err := c.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	oc := c.oauth2Config(ep)
	var params []oauth2.AuthCodeOption
	for _, p := range c.ExtraParams {
		name, value, _ := strings.Cut(p, "=")
		params = append(params, oauth2.SetAuthURLParam(name, value))
	}
	if c.ClientSecret != "" {
		// x/oauth2 sends no client credentials with the device
		// authorization request; confidential clients need them.
		params = append(params, oauth2.SetAuthURLParam("client_secret", c.ClientSecret))
	}
	c.verbosef("requesting a device code from %s", ep.DeviceAuthorization)
	sent := time.Now()
	da, err := oc.DeviceAuth(c.oauth2Context(ctx), params...)
	if err != nil {
		switch e := classify(ctx, err).(type) {
		case *oauthError:
			return nil, fmt.Errorf("the provider refused to start a device login: %v; check --client-id, --scope and --extra-param, and that the client may use the device flow", e)
		case *transientError:
			return nil, fmt.Errorf("cannot start a device login at %s: %v; try again in a moment", ep.DeviceAuthorization, e)
		default:
			return nil, e
		}
	}
	auth, err := c.authorization(da, sent)
	if err != nil {
		return nil, err
	}
	c.showAuthorization(auth)
	tok, issuedAt, err := c.poll(ctx, oc, da.DeviceCode, auth)
	if err != nil {
		return nil, err
	}
	return c.newEntry(tok, issuedAt, ep, nil), nil
}

// authorization checks the provider's answer and converts it.
func (c *config) authorization(da *oauth2.DeviceAuthResponse, sent time.Time) (*Authorization, error) {
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return nil, fmt.Errorf("the provider's device authorization answer lacks a device_code, user_code or verification_uri; it does not follow RFC 8628")
	}
	if !webURL(da.VerificationURI) {
		return nil, fmt.Errorf("the provider's verification_uri %q is not an http(s) URL", Sanitize(da.VerificationURI, 200))
	}
	a := &Authorization{
		UserCode:        Sanitize(da.UserCode, maxShown),
		VerificationURI: Sanitize(da.VerificationURI, maxShown),
	}
	switch {
	case a.UserCode == "":
		return nil, fmt.Errorf("the provider's user_code has no printable characters")
	case strings.HasSuffix(a.UserCode, "…") || strings.HasSuffix(a.VerificationURI, "…"):
		// A cut code or address would send the person astray.
		return nil, fmt.Errorf("the provider's user_code or verification_uri is implausibly long (over %d characters)", maxShown)
	}
	if complete := Sanitize(da.VerificationURIComplete, maxShown); webURL(da.VerificationURIComplete) && !strings.HasSuffix(complete, "…") {
		a.VerificationURIComplete = complete
	}
	lifetime := defaultCodeLifetime
	if !da.Expiry.IsZero() {
		// x/oauth2 turned expires_in into a time on the wall clock.
		lifetime = da.Expiry.Sub(sent).Round(time.Second)
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("the provider's device code expired as it was issued (expires_in ≤ 0)")
	}
	a.Expiry = c.Clock.Now().Add(min(lifetime, maxCodeLifetime))
	a.Interval = defaultInterval
	if da.Interval > 0 {
		a.Interval = min(time.Duration(min(da.Interval, int64(maxInterval/time.Second)))*time.Second, maxInterval)
	}
	return a, nil
}

// wait sleeps for d between polls, redrawing the countdown every second
// when stderr is a terminal.
func (c *config) wait(ctx context.Context, a *Authorization, d time.Duration) error {
	end := c.Clock.Now().Add(d)
	for {
		now := c.Clock.Now()
		c.waitTick(a, a.Expiry.Sub(now))
		step := end.Sub(now)
		if c.StderrIsTerminal {
			step = min(step, time.Second)
		}
		if step <= 0 {
			return nil
		}
		if err := c.Clock.Sleep(ctx, step); err != nil {
			return err
		}
		if !c.StderrIsTerminal {
			return nil
		}
	}
}

func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// poll asks the token endpoint until the person approves, the code
// expires, or the provider gives a final answer. Network failures, 5xx
// and garbled answers are retried with a growing pause.
func (c *config) poll(ctx context.Context, oc *oauth2.Config, deviceCode string, a *Authorization) (*oauth2.Token, time.Time, error) {
	defer c.endWait()
	interval := a.Interval
	wait := interval
	failures := 0
	var lastProblem error
	for {
		now := c.Clock.Now()
		left := a.Expiry.Sub(now)
		if left <= 0 {
			if lastProblem != nil {
				return nil, time.Time{}, fmt.Errorf("%w: the code expired while the provider kept failing (last: %v); check the provider and run the command again", errLoginFailed, lastProblem)
			}
			return nil, time.Time{}, fmt.Errorf("%w: the code expired before the sign-in was approved; run the command again to get a new code", errLoginFailed)
		}
		if err := c.wait(ctx, a, min(wait, left)); err != nil {
			return nil, time.Time{}, err
		}
		if !c.Clock.Now().Before(a.Expiry) {
			continue
		}
		issuedAt := c.Clock.Now()
		// Exchange with the device_code grant: one request, no loop
		// inside x/oauth2, so the waiting stays on this clock. An empty
		// parameter is the same as an absent one (RFC 6749 §3.2).
		tok, err := oc.Exchange(c.oauth2Context(ctx), "",
			oauth2.SetAuthURLParam("grant_type", deviceCodeGrant),
			oauth2.SetAuthURLParam("device_code", deviceCode))
		if err == nil {
			return tok, issuedAt, nil
		}
		switch e := classify(ctx, err).(type) {
		case *oauthError:
			switch e.Code {
			case "authorization_pending":
				wait = interval
			case "slow_down":
				// RFC 8628 §3.5: add 5 s to this and every later wait.
				interval = min(interval+5*time.Second, maxInterval)
				wait = interval
				c.verbosef("the provider asked to slow down; polling every %s", interval)
			case "access_denied":
				return nil, time.Time{}, fmt.Errorf("%w: the sign-in was denied at the provider; run the command again if that was a mistake", errLoginFailed)
			case "expired_token":
				return nil, time.Time{}, fmt.Errorf("%w: the code expired before the sign-in was approved; run the command again to get a new code", errLoginFailed)
			default:
				return nil, time.Time{}, fmt.Errorf("the device login failed: %v; check the client's settings at the provider", e)
			}
			if failures > 0 {
				c.notef("the provider answers again; still waiting for approval")
			}
			failures, lastProblem = 0, nil
		case *transientError:
			failures++
			lastProblem = e
			wait = min(interval<<min(failures, 4), maxBackoff)
			wait = max(wait, interval)
			if failures == 1 {
				c.notef("%v; retrying, the code stays valid until %s", e, a.Expiry.Local().Format("15:04:05"))
			}
		default:
			return nil, time.Time{}, e
		}
	}
}
