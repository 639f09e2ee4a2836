package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	// The replaced refresh tokens are saved with the new session until
	// the provider confirms their revocation: a login killed in between
	// leaves them for logout or the next login, never ownerless.
	e.Superseded = supersededBy(e, copies)
	if err := sessions.Save(e); err != nil {
		return fmt.Errorf("signed in, but could not save the session (%v); the previous session, if any, is kept", err)
	}
	s.clearFailure(sessions, t)
	if len(e.Superseded) == 0 {
		return nil
	}
	left, err := revokeSuperseded(ctx, p, e)
	if err != nil {
		t.Notef("the previous session could not be revoked at the provider (%v); it is kept with the new one, so that logout or the next login revokes it", err)
	}
	if len(left) < len(e.Superseded) {
		e.Superseded = left
		if err := sessions.Save(e); err != nil {
			t.Verbosef("could not note that the previous session is revoked: %v", err)
		}
	}
	return nil
}

// supersededBy lists the distinct refresh tokens that e replaces: those
// of every copy of the old session and those the old session had not yet
// revoked.
func supersededBy(e *cache.Entry, copies []cache.Copy) []string {
	var out []string
	add := func(rt string) {
		if rt != "" && rt != e.RefreshToken && !slices.Contains(out, rt) {
			out = append(out, rt)
		}
	}
	for _, c := range copies {
		if c.Entry != nil {
			add(c.Entry.RefreshToken)
			for _, rt := range c.Entry.Superseded {
				add(rt)
			}
		}
	}
	return out
}

// revokeSuperseded revokes e's superseded refresh tokens and returns those
// the provider did not confirm.
func revokeSuperseded(ctx context.Context, p *provider.Client, e *cache.Entry) (left []string, err error) {
	var errs []error
	for _, rt := range e.Superseded {
		if _, rerr := p.Revoke(ctx, e.RevocationEndpoint, rt, "refresh_token"); rerr != nil {
			left = append(left, rt)
			errs = append(errs, rerr)
		}
	}
	return left, errors.Join(errs...)
}

// RevokeTokens revokes, at the provider (RFC 7009), every distinct
// refresh token of the given copies of a session (their superseded ones
// included), or a copy's access token when it has no refresh token. It
// returns how many tokens the provider revoked, and the errors of the
// others; a provider without a revocation endpoint revokes nothing and
// is no error.
func RevokeTokens(ctx context.Context, p *provider.Client, copies []*cache.Entry) (int, error) {
	seen := map[string]bool{}
	revoked := 0
	var errs []error
	revoke := func(e *cache.Entry, token, hint string) {
		if token == "" || seen[token] {
			return
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
	for _, e := range copies {
		if e.RefreshToken != "" {
			revoke(e, e.RefreshToken, "refresh_token")
		} else {
			revoke(e, e.AccessToken, "access_token")
		}
		for _, rt := range e.Superseded {
			revoke(e, rt, "refresh_token")
		}
	}
	return revoked, errors.Join(errs...)
}
