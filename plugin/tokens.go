package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicelogin/kubectl-device-login/cache"
)

const (
	// unknownLifetime is assumed for a token whose expiry is not known
	// (no expires_in and not a JWT): it is used for at most this long.
	unknownLifetime = time.Hour
	// maxLifetime caps absurd expiries so that every time stays printable.
	maxLifetime = 366 * 24 * time.Hour
	// maxClockStep is how far in the future a session's issue time may be
	// before the clock is taken to have gone back.
	maxClockStep = 5 * time.Minute
)

// oauth2Config is the x/oauth2 view of a client. Credentials go in the
// request body: auto-detection would send two requests per poll.
func (c *config) oauth2Config(ep endpoints) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		Scopes:       c.Scopes,
		Endpoint: oauth2.Endpoint{
			DeviceAuthURL: ep.DeviceAuthorization,
			TokenURL:      ep.Token,
			AuthStyle:     oauth2.AuthStyleInParams,
		},
	}
}

func (c *config) oauth2Context(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.http)
}

// newEntry turns a token response into a cache entry. prev, when not nil,
// is the entry being refreshed: its ID token is kept when the response has
// none and the old one is still valid.
func (c *config) newEntry(tok *oauth2.Token, issuedAt time.Time, ep endpoints, prev *cache.Entry) *cache.Entry {
	e := &cache.Entry{
		Key:                c.key,
		TokenEndpoint:      ep.Token,
		RevocationEndpoint: ep.Revocation,
		AccessToken:        tok.AccessToken,
		TokenType:          tok.TokenType,
		RefreshToken:       tok.RefreshToken,
		IssuedAt:           issuedAt.UTC(),
	}
	switch {
	case tok.ExpiresIn > 0:
		e.Expiry = issuedAt.Add(capLifetime(time.Duration(min(tok.ExpiresIn, int64(maxLifetime/time.Second))) * time.Second)).UTC()
	default:
		if cl, ok := ParseClaims(tok.AccessToken); ok {
			e.Expiry = capExpiry(cl.ExpiryTime(), issuedAt)
		}
	}
	if id, _ := tok.Extra("id_token").(string); id != "" {
		e.IDToken = id
		if cl, ok := ParseClaims(id); ok {
			e.IDTokenExpiry = capExpiry(cl.ExpiryTime(), issuedAt)
		}
	} else if prev != nil && prev.IDToken != "" && prev.IDTokenExpiry.After(issuedAt) {
		e.IDToken, e.IDTokenExpiry = prev.IDToken, prev.IDTokenExpiry
	}
	return e
}

func capLifetime(d time.Duration) time.Duration { return min(d, maxLifetime) }

func capExpiry(t, issuedAt time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	if limit := issuedAt.Add(maxLifetime); t.After(limit) {
		return limit.UTC()
	}
	return t.UTC()
}

// chosen returns the token handed to kubectl and when it expires; an
// unknown expiry counts as unknownLifetime after issue.
func (c *config) chosen(e *cache.Entry) (token string, expiry time.Time) {
	token, expiry = e.AccessToken, e.Expiry
	if c.Token == TokenID {
		token, expiry = e.IDToken, e.IDTokenExpiry
	}
	if token != "" && expiry.IsZero() {
		expiry = e.IssuedAt.Add(unknownLifetime)
	}
	// The same cap as when saving: a file cannot make a token last longer.
	return token, capExpiry(expiry, e.IssuedAt)
}

// margin is the refresh margin for a token issued at issuedAt that expires
// at expiry: the configured margin, but at most half the lifetime.
func (c *config) margin(issuedAt, expiry time.Time) time.Duration {
	return max(0, min(c.RefreshMargin, expiry.Sub(issuedAt)/2))
}

// fresh reports whether the entry's token can be served without a refresh,
// and the expirationTimestamp to give kubectl: the moment the plugin would
// refresh, so that kubectl runs it again just then.
func (c *config) fresh(e *cache.Entry, now time.Time) (token string, credExpiry time.Time, ok bool) {
	if e == nil {
		return "", time.Time{}, false
	}
	token, expiry := c.chosen(e)
	if token == "" {
		return "", time.Time{}, false
	}
	refreshAt := expiry.Add(-c.margin(e.IssuedAt, expiry))
	// Tokens "issued" in the future mean the clock went back (or the file
	// lies): their expiry cannot be trusted, so they are renewed.
	if !now.Before(refreshAt) || e.IssuedAt.After(now.Add(maxClockStep)) {
		return token, expiry, false
	}
	return token, credentialExpiry(refreshAt, now), true
}

// credentialExpiry truncates t to whole seconds and drops it when that is
// not in the future: a timestamp already past would make kubectl run the
// plugin again for every request.
func credentialExpiry(t, now time.Time) time.Time {
	t = t.Truncate(time.Second)
	if !t.After(now) {
		return time.Time{}
	}
	return t
}

// oauthError is an error answer from the provider (RFC 6749 §5.2).
type oauthError struct {
	Status      int
	Code        string
	Description string
}

func (e *oauthError) Error() string {
	s := fmt.Sprintf("the provider answered %s", Sanitize(e.Code, 80))
	if e.Description != "" {
		s += fmt.Sprintf(" (%s)", Sanitize(e.Description, 300))
	}
	return s
}

// transientError is a failure worth retrying: the network, a timeout, a
// 5xx or 429 answer, or a body that does not parse.
type transientError struct{ what string }

func (e *transientError) Error() string { return e.what }

// classify sorts an error from x/oauth2 into *oauthError, *transientError
// or a context error, without ever quoting a response body (x/oauth2's own
// messages include it, and it may hold tokens).
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		switch {
		case re.ErrorCode != "" && status < 500:
			return &oauthError{Status: status, Code: re.ErrorCode, Description: re.ErrorDescription}
		case status >= 500 || status == 429:
			return &transientError{fmt.Sprintf("the provider answered HTTP %d", status)}
		case status >= 300 && status < 400:
			loc := ""
			if re.Response != nil {
				loc = " to " + Sanitize(re.Response.Header.Get("Location"), 200)
			}
			return &oauthError{Status: status, Code: fmt.Sprintf("HTTP %d, a redirect%s that was not followed because the request carries credentials", status, loc)}
		default:
			return &oauthError{Status: status, Code: fmt.Sprintf("HTTP %d without an OAuth error code", status)}
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &transientError{networkProblem(ctx, err)}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "cannot parse json"), strings.Contains(msg, "cannot parse"), strings.Contains(msg, "unmarshal"):
		return &transientError{"the provider's answer is not valid JSON"}
	case strings.Contains(msg, "missing access_token"):
		return &transientError{"the provider's answer has no access_token"}
	case strings.Contains(msg, "cannot fetch token"), strings.Contains(msg, "cannot auth device"):
		return &transientError{"the connection broke while reading the provider's answer"}
	}
	return &transientError{"the provider's answer could not be used"}
}

// networkProblem describes a transport failure in a few words.
func networkProblem(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "interrupted"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return Sanitize(err.Error(), 200)
}
