package plugin

import (
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
)

// jwtExpiring is an unsigned JWT whose exp is t.
func jwtExpiring(t time.Time) string {
	return fakeJWT(map[string]any{"sub": "alice", "exp": t.Unix()})
}

func TestNewEntryExpiry(t *testing.T) {
	sent := time.Date(2026, 11, 29, 20, 15, 4, 0, time.UTC)
	in := func(d time.Duration) time.Time { return sent.Add(d) }
	for name, tc := range map[string]struct {
		tok  provider.Token
		want time.Time
	}{
		"expires_in":                {provider.Token{AccessToken: "opaque", ExpiresIn: time.Hour, HasExpiresIn: true}, in(time.Hour)},
		"no expires_in, opaque":     {provider.Token{AccessToken: "opaque"}, time.Time{}},
		"no expires_in, a JWT":      {provider.Token{AccessToken: jwtExpiring(in(20 * time.Minute))}, in(20 * time.Minute)},
		"stale expires_in, a JWT":   {provider.Token{AccessToken: jwtExpiring(in(17 * time.Second)), ExpiresIn: 20 * time.Second, HasExpiresIn: true}, in(17 * time.Second)},
		"exp later than expires_in": {provider.Token{AccessToken: jwtExpiring(in(time.Hour)), ExpiresIn: time.Minute, HasExpiresIn: true}, in(time.Minute)},
		"expires_in 0, opaque":      {provider.Token{AccessToken: "opaque", HasExpiresIn: true}, sent},
		"expires_in -5, opaque":     {provider.Token{AccessToken: "opaque", ExpiresIn: -5 * time.Second, HasExpiresIn: true}, sent},
		"expires_in 0, a JWT":       {provider.Token{AccessToken: jwtExpiring(in(time.Minute)), HasExpiresIn: true}, in(time.Minute)},
		"absurd expires_in":         {provider.Token{AccessToken: "opaque", ExpiresIn: 100 * 365 * 24 * time.Hour, HasExpiresIn: true}, in(maxLifetime)},
		"absurd exp":                {provider.Token{AccessToken: jwtExpiring(in(100 * 365 * 24 * time.Hour))}, in(maxLifetime)},
	} {
		tc.tok.Sent = sent
		e := newEntry(cache.Key{Token: TokenAccess}, &tc.tok, nil)
		if !e.Expiry.Equal(tc.want) {
			t.Errorf("%s: expiry %s, want %s", name, e.Expiry, tc.want)
		}
	}
}

func TestNewEntryKeepsWhatTheAnswerLacks(t *testing.T) {
	sent := time.Now()
	prev := &cache.Entry{IDToken: jwtExpiring(sent.Add(time.Hour)), IDTokenExpiry: sent.Add(time.Hour).UTC(), Superseded: []string{"rt-old"}}
	e := newEntry(cache.Key{}, &provider.Token{AccessToken: "a", Sent: sent}, prev)
	if e.IDToken != prev.IDToken || len(e.Superseded) != 1 {
		t.Errorf("a refresh answer without an ID token lost the valid one, or the superseded tokens")
	}
	prev.IDTokenExpiry = sent.Add(-time.Second)
	if e := newEntry(cache.Key{}, &provider.Token{AccessToken: "a", Sent: sent}, prev); e.IDToken != "" {
		t.Errorf("an expired ID token was kept")
	}
}

func TestFreshAndMargin(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	s := &Settings{RefreshMargin: time.Minute, GrantType: GrantDeviceCode, Exec: ExecInfo{APIVersion: APIVersionV1}}
	entry := func(issued, expiry time.Duration, rt string) *cache.Entry {
		return &cache.Entry{Key: cache.Key{Token: TokenAccess}, AccessToken: "at", RefreshToken: rt, IssuedAt: now.Add(issued), Expiry: now.Add(expiry)}
	}
	for name, tc := range map[string]struct {
		e         *cache.Entry
		fresh     bool
		timestamp time.Duration // expirationTimestamp - now when fresh; -1 for none
	}{
		"an hour left":                        {entry(-time.Hour, time.Hour, "rt"), true, time.Hour - time.Minute},
		"inside the margin":                   {entry(-time.Hour, 30*time.Second, "rt"), false, 0},
		"inside the margin, no refresh token": {entry(-time.Hour, 30*time.Second, ""), true, 30 * time.Second},
		"short-lived: margin is half":         {entry(-10*time.Second, 30*time.Second, "rt"), true, 10 * time.Second},
		"expired":                             {entry(-time.Hour, -time.Second, ""), false, 0},
		"issued in the future":                {entry(time.Hour, 2*time.Hour, "rt"), false, 0},
		"under a second to renewal":           {entry(-time.Hour, time.Minute+500*time.Millisecond, "rt"), true, -1},
	} {
		cred, ok := s.fresh(tc.e, now)
		switch {
		case ok != tc.fresh:
			t.Errorf("%s: fresh %t, want %t", name, ok, tc.fresh)
		case ok && tc.timestamp == -1 && !cred.Expiry.IsZero():
			t.Errorf("%s: expirationTimestamp %s, want none (not in the future once truncated)", name, cred.Expiry)
		case ok && tc.timestamp >= 0 && !cred.Expiry.Equal(now.Add(tc.timestamp)):
			t.Errorf("%s: expirationTimestamp in %s, want %s", name, cred.Expiry.Sub(now), tc.timestamp)
		}
	}
	// A token issued in the future is renewed, but still served when that
	// fails: valid goes by the expiry alone.
	if _, _, ok := s.valid(entry(time.Hour, 2*time.Hour, "rt"), now); !ok {
		t.Errorf("a session issued in the future is withheld when its renewal fails")
	}
}

func TestRemembersTheIDTokenKind(t *testing.T) {
	now := time.Now()
	e := &cache.Entry{Key: cache.Key{Token: TokenID}, AccessToken: "at", Expiry: now.Add(time.Hour), IDToken: "id", IDTokenExpiry: now.Add(time.Minute), IssuedAt: now}
	if tok, exp := chosen(e); tok != "id" || !exp.Equal(now.Add(time.Minute).UTC()) && !exp.Equal(now.Add(time.Minute)) {
		t.Errorf("chosen = %q, %s", tok, exp)
	}
	if _, ok := Expiry(&cache.Entry{Key: cache.Key{Token: TokenID}, AccessToken: "at"}); ok {
		t.Errorf("a session without the ID token it hands out has an expiry")
	}
}
