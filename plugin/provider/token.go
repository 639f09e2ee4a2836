package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// Token is a successful token answer.
type Token struct {
	AccessToken  string
	RefreshToken string
	IDToken      string
	// ExpiresIn is the access token's lifetime as the provider stated it,
	// when it did (HasExpiresIn); it counts from Sent.
	ExpiresIn    time.Duration
	HasExpiresIn bool
	// Sent is when the request that got this answer was sent, by the
	// client's clock.
	Sent time.Time
	// Endpoints are the endpoints of the provider that issued it.
	Endpoints Endpoints
}

// token converts x/oauth2's token.
func (c *Client) token(t *oauth2.Token, sent time.Time, ep Endpoints) *Token {
	tok := &Token{
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
		Sent:         sent,
		Endpoints:    ep,
	}
	if id, ok := t.Extra("id_token").(string); ok {
		tok.IDToken = id
	}
	seconds, stated := t.ExpiresIn, t.ExpiresIn != 0
	if !stated {
		// x/oauth2's client credentials grant keeps expires_in only in
		// the raw answer (and form-encoded answers hold strings).
		seconds, stated = rawSeconds(t.Extra("expires_in"))
	}
	switch {
	case stated:
		tok.ExpiresIn, tok.HasExpiresIn = time.Duration(max(min(seconds, maxExpiresIn), -maxExpiresIn))*time.Second, true
	case t.Extra("expires_in") != nil:
		// Present and zero (or not a number): no lifetime at all.
		tok.HasExpiresIn = true
	case !t.Expiry.IsZero():
		// A form-encoded answer: x/oauth2 kept only the expiry time.
		tok.ExpiresIn, tok.HasExpiresIn = time.Until(t.Expiry).Round(time.Second), true
	}
	return tok
}

// rawSeconds reads a non-zero whole number of seconds from a raw token
// answer's field: a JSON number or a string of digits.
func rawSeconds(v any) (int64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, false
		}
		f = float64(n)
	default:
		return 0, false
	}
	if f == 0 || math.IsNaN(f) {
		return 0, false
	}
	return int64(max(min(f, maxExpiresIn), -maxExpiresIn)), true
}

// maxExpiresIn bounds expires_in (seconds) so that later arithmetic on
// times cannot overflow.
const maxExpiresIn = 10 * 366 * 24 * 3600

// Refresh spends a refresh token once (RFC 6749 §6) at ep.Token. The
// caller holds the session's lock. A provider that issues no new refresh
// token leaves the old one in the answer.
func (c *Client) Refresh(ctx context.Context, ep Endpoints, refreshToken string) (*Token, error) {
	c.logf("refreshing the session at %s", ep.Token)
	sent := c.clock().Now()
	style := c.authStyle(ctx)
	oc := c.oauth2Config(ep, style)
	t, err := oc.TokenSource(c.context(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, c.explain(classify(ctx, ep.Token, err), style)
	}
	return c.token(t, sent, ep), nil
}

// ClientCredentials gets a token with the client's own credentials (RFC
// 6749 §4.4), for unattended use. The extra parameters (audience=…,
// resource=…) go with the token request.
func (c *Client) ClientCredentials(ctx context.Context) (*Token, error) {
	if c.ClientSecret == "" {
		return nil, errors.New("the client credentials grant needs a client secret: set DEVICE_LOGIN_CLIENT_SECRET or --client-secret-file")
	}
	ep, err := c.TokenEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	cc := clientcredentials.Config{
		ClientID:       c.ClientID,
		ClientSecret:   c.ClientSecret,
		TokenURL:       ep.Token,
		Scopes:         c.Scopes,
		EndpointParams: url.Values{},
		AuthStyle:      c.authStyle(ctx),
	}
	style := cc.AuthStyle
	for name, value := range c.extraParams() {
		cc.EndpointParams.Add(name, value)
	}
	c.logf("requesting a token with the client's credentials at %s", ep.Token)
	sent := c.clock().Now()
	t, err := cc.Token(c.context(ctx))
	if err != nil {
		return nil, c.explain(classify(ctx, ep.Token, err), style)
	}
	return c.token(t, sent, ep), nil
}

// sameOriginOK tells whether a discovered URL may be used: it passes
// CheckURL and shares the issuer's origin, unless other origins are
// allowed.
func (c *Client) sameOriginOK(u string) bool {
	return u != "" && CheckURL("endpoint", u) == nil && (c.AllowCrossOriginEndpoints || origin(u) == origin(c.Issuer))
}

// Revoke revokes a token at the revocation endpoint (RFC 7009); hint is
// "refresh_token" or "access_token". Without an endpoint it asks
// discovery; it reports false when the provider has none.
func (c *Client) Revoke(ctx context.Context, endpoint, token, hint string) (bool, error) {
	// A discovered endpoint is checked by sameOriginOK (CheckURL included),
	// one the caller passes by CheckURL.
	if endpoint == "" {
		d, err := c.discover(ctx)
		if err != nil {
			return false, err
		}
		if d.RevocationEndpoint == "" {
			return false, nil
		}
		if !c.sameOriginOK(d.RevocationEndpoint) {
			return false, fmt.Errorf("the provider's revocation_endpoint %s is not on the issuer's origin; not sending it a token", terminal.Sanitize(d.RevocationEndpoint, 200))
		}
		endpoint = d.RevocationEndpoint
	} else if err := CheckURL("the revocation endpoint", endpoint); err != nil {
		return false, err
	}
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	style := c.authStyle(ctx)
	basic := c.ClientSecret != "" && style == oauth2.AuthStyleInHeader
	if !basic {
		form.Set("client_id", c.ClientID)
		if c.ClientSecret != "" {
			form.Set("client_secret", c.ClientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		setBasicAuth(req, c.ClientID, c.ClientSecret)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, &netError{URL: endpoint, Err: unwrapURL(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode == http.StatusOK {
		return true, nil
	}
	if oe, ok := oauthErrorIn(body); ok {
		return false, c.explain(oe, style)
	}
	return false, &httpError{Status: resp.StatusCode, Location: resp.Header.Get("Location")}
}

// unwrapURL removes net/http's *url.Error, whose message repeats the URL.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
