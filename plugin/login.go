package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// Login signs in now (a device login, or the client's credentials for
// that grant) and saves the session. When the cached session is still
// fresh it only says so, unless force is set. The old session is replaced
// only once the new one is saved, and its refresh tokens are then
// revoked: an interrupted login leaves it as it was. It prints nothing on
// stdout.
func Login(ctx context.Context, s *Settings, t *terminal.Terminal, force bool) error {
	if s.TokenCache == cache.Nowhere {
		return errors.New("login with --token-cache=none would keep nothing for kubectl to use; with none, kubectl's own get-token signs in on every run, so leave out login, or choose --token-cache=disk or keyring")
	}
	sessions := s.Sessions(ctx, t)
	p, err := s.Provider(t)
	if err != nil {
		return err
	}
	lock, err := s.lock(ctx, sessions, t)
	if err != nil {
		return err
	}
	defer lock.Release()
	old, err := s.current(sessions)
	if err != nil {
		return err
	}
	if old != nil && !force {
		if _, ok := s.fresh(old, s.Clock.Now()); ok {
			_, expiry := chosen(old)
			t.Printf("Already signed in as %s; the token is valid until %s. Use --force to sign in again.\n", Who(old.IDToken), expiry.Local().Format(time.DateTime))
			return nil
		}
	}
	copies, err := sessions.Copies(s.Key.ID())
	if err != nil {
		return err
	}
	var e *cache.Entry
	if s.GrantType == GrantClientCredentials {
		var tok *provider.Token
		if tok, err = p.ClientCredentials(ctx); err == nil {
			e = newEntry(s.Key, tok, nil)
		}
	} else {
		e, err = s.deviceLogin(ctx, p, t)
	}
	if err != nil {
		return err
	}
	s.announce(e, t)
	if err := sessions.Save(e); err != nil {
		return fmt.Errorf("signed in, but could not save the session (%v); the previous session, if any, is kept", err)
	}
	if err := sessions.ClearFailure(s.Key.ID()); err != nil {
		t.Verbosef("%v", err)
	}
	var replaced []*cache.Entry
	for _, c := range copies {
		if c.Entry != nil && c.Entry.RefreshToken != e.RefreshToken {
			replaced = append(replaced, c.Entry)
		}
	}
	if n, err := RevokeTokens(ctx, p, replaced); err != nil {
		t.Notef("the previous session could not be revoked at the provider (%v); it ends there when it expires", err)
	} else if n > 0 {
		t.Verbosef("revoked the previous session at the provider")
	}
	return nil
}

// RevokeTokens revokes, at the provider (RFC 7009), every distinct
// refresh token of the given copies of a session, or its access token
// when a copy has no refresh token. It returns how many tokens the
// provider revoked, and the errors of the others; a provider without a
// revocation endpoint revokes nothing and is no error.
func RevokeTokens(ctx context.Context, p *provider.Client, copies []*cache.Entry) (int, error) {
	seen := map[string]bool{}
	revoked := 0
	var errs []error
	for _, e := range copies {
		token, hint := e.RefreshToken, "refresh_token"
		if token == "" {
			token, hint = e.AccessToken, "access_token"
		}
		if token == "" || seen[token] {
			continue
		}
		seen[token] = true
		ok, err := p.Revoke(ctx, e.RevocationEndpoint, token, hint)
		switch {
		case err != nil:
			errs = append(errs, err)
		case ok:
			revoked++
		}
	}
	return revoked, errors.Join(errs...)
}
