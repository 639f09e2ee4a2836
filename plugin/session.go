package plugin

import (
	"strings"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
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

// newEntry turns a token answer into a session. prev, when not nil, is
// the session being refreshed: its ID token is kept when the answer has
// none and the old one is still valid.
//
// The access token expires at the request's time plus expires_in, but
// never later than its own exp claim when it is a JWT: some providers
// build the answer when the person approves and hand it out unchanged at
// the next poll, so expires_in can be stale by a polling interval. An
// expires_in of zero or less gives an opaque token no lifetime: it serves
// the run that got it, and the next run renews it.
func newEntry(key cache.Key, tok *provider.Token, prev *cache.Entry) *cache.Entry {
	issued := tok.Sent
	e := &cache.Entry{
		Key:                key,
		TokenEndpoint:      tok.Endpoints.Token,
		RevocationEndpoint: tok.Endpoints.Revocation,
		AccessToken:        tok.AccessToken,
		RefreshToken:       tok.RefreshToken,
		IssuedAt:           issued.UTC(),
	}
	if prev != nil {
		e.Superseded = prev.Superseded
	}
	if tok.HasExpiresIn && tok.ExpiresIn > 0 {
		e.Expiry = issued.Add(min(tok.ExpiresIn, maxLifetime)).UTC()
	}
	if cl, ok := ParseClaims(tok.AccessToken); ok && cl.Expiry != 0 {
		if exp := capExpiry(cl.ExpiryTime(), issued); e.Expiry.IsZero() || exp.Before(e.Expiry) {
			e.Expiry = exp
		}
	}
	if e.Expiry.IsZero() && tok.HasExpiresIn {
		e.Expiry = e.IssuedAt
	}
	if tok.IDToken != "" {
		e.IDToken = tok.IDToken
		if cl, ok := ParseClaims(tok.IDToken); ok {
			e.IDTokenExpiry = capExpiry(cl.ExpiryTime(), issued)
		}
	} else if prev != nil && prev.IDToken != "" && prev.IDTokenExpiry.After(issued) {
		e.IDToken, e.IDTokenExpiry = prev.IDToken, prev.IDTokenExpiry
	}
	return e
}

func capExpiry(t, issuedAt time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	if limit := issuedAt.Add(maxLifetime); t.After(limit) {
		return limit.UTC()
	}
	return t.UTC()
}

// chosen returns the token handed to kubectl (access or ID token, as the
// key says) and when it expires; an unknown expiry counts as
// unknownLifetime after issue.
func chosen(e *cache.Entry) (token string, expiry time.Time) {
	token, expiry = e.AccessToken, e.Expiry
	if e.Key.Token == TokenID {
		token, expiry = e.IDToken, e.IDTokenExpiry
	}
	if token != "" && expiry.IsZero() {
		expiry = e.IssuedAt.Add(unknownLifetime)
	}
	// The same cap as when saving: a file cannot make a token last longer.
	return token, capExpiry(expiry, e.IssuedAt)
}

// renewable tells whether the session can be renewed without a person:
// with its refresh token, or with the client's credentials.
func (s *Settings) renewable(e *cache.Entry) bool {
	return e.RefreshToken != "" || s.GrantType == GrantClientCredentials
}

// margin is how long before expiry a token is renewed: the configured
// margin, at most half the lifetime, and none when the session cannot be
// renewed silently (the token then serves until it expires).
func (s *Settings) margin(e *cache.Entry, expiry time.Time) time.Duration {
	if !s.renewable(e) {
		return 0
	}
	return max(0, min(s.RefreshMargin, expiry.Sub(e.IssuedAt)/2))
}

// fresh reports whether the session's token can be served without
// renewing it, with the expirationTimestamp to give kubectl: the moment
// the plugin would renew, so that kubectl runs it again just then.
func (s *Settings) fresh(e *cache.Entry, now time.Time) (Credential, bool) {
	if e == nil {
		return Credential{}, false
	}
	token, expiry := chosen(e)
	if token == "" {
		return Credential{}, false
	}
	renewAt := expiry.Add(-s.margin(e, expiry))
	// Tokens "issued" in the future mean the clock went back (or the file
	// lies): their expiry cannot be trusted, so they are renewed.
	if !now.Before(renewAt) || e.IssuedAt.After(now.Add(maxClockStep)) {
		return Credential{}, false
	}
	return s.credential(token, renewAt, now), true
}

// valid reports whether the session's token is still valid now, past the
// moment it should have been renewed: served when renewing failed, with
// its expiry as expirationTimestamp. A session issued in the future (the
// clock went back) counts by its expiry too: renewing it is preferred,
// but when that fails the API server, not this clock, has the last word.
func (s *Settings) valid(e *cache.Entry, now time.Time) (Credential, time.Time, bool) {
	if e == nil {
		return Credential{}, time.Time{}, false
	}
	token, expiry := chosen(e)
	if token == "" || !now.Before(expiry) {
		return Credential{}, time.Time{}, false
	}
	return s.credential(token, expiry, now), expiry, true
}

// credential is the credential for token, to be run again at renewAt.
func (s *Settings) credential(token string, renewAt, now time.Time) Credential {
	return Credential{APIVersion: s.Exec.APIVersion, Token: token, Expiry: credentialExpiry(renewAt, now), Bare: s.Output == OutputToken}
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

// Who describes the person an ID token is about: e-mail or user name, the
// display name and the subject when present; "an unknown user" otherwise.
func Who(idToken string) string {
	cl, ok := ParseClaims(idToken)
	if !ok || cl.Subject == "" && cl.Email == "" && cl.Username == "" {
		return "an unknown user (no ID token)"
	}
	main := cl.Email
	if main == "" {
		main = cl.Username
	}
	var extra []string
	if cl.Name != "" && cl.Name != main {
		extra = append(extra, cl.Name)
	}
	if main == "" {
		main = cl.Subject
	} else if cl.Subject != "" && cl.Subject != main {
		extra = append(extra, "subject "+cl.Subject)
	}
	s := main
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return terminal.Sanitize(s, 200)
}

// Expiry is when the token a session hands to kubectl expires; ok is
// false when the session holds no such token.
func Expiry(e *cache.Entry) (expiry time.Time, ok bool) {
	token, expiry := chosen(e)
	return expiry, token != ""
}
