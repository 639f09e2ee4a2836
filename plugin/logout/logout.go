// Package logout ends sessions: every copy of a session is read under its
// lock, each distinct refresh token is revoked at the provider (RFC 7009),
// and every file of the session (the session, what interrupted saves
// left, the keyring entry and its index record, the failure note, the
// lock) is deleted.
package logout

import (
	"context"
	"errors"
	"fmt"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// Logout ends the session of these settings. A provider that cannot be
// reached does not stop it: the session is deleted here, and the person
// is told that the provider may keep it until it expires.
func Logout(ctx context.Context, s *plugin.Settings, t *terminal.Terminal) error {
	sessions := s.Sessions(ctx, t)
	ended, _, err := end(ctx, s, sessions, s.Key.ID(), t)
	if err != nil {
		return err
	}
	if !ended {
		t.Printf("No session for %s (client %s) in %s; nothing to do.\n", s.Key.Issuer, s.Key.ClientID, s.CacheDir)
	}
	return nil
}

// All ends every session of the cache directory of s, on disk and in the
// keyring, each revoked at its own provider as a public client: a client
// secret is never sent to every provider in the cache. When the keyring
// held sessions (or is the storage), every keyring item of the cache
// directory is removed at the end, including any an interrupted save left
// behind; the directory itself goes when nothing else is left in it.
func All(ctx context.Context, s *plugin.Settings, t *terminal.Terminal) error {
	// Nothing of one provider's (the client secret, endpoints) goes to
	// every provider in the cache, whatever s holds.
	s = s.ForSession(s.Key)
	sessions := s.Sessions(ctx, t)
	ids, err := sessions.IDs()
	if err != nil {
		return err
	}
	keyringToo := s.TokenCache == cache.Keyring
	var errs []error
	ended := 0
	for _, id := range ids {
		ok, inKeyring, err := end(ctx, s, sessions, id, t)
		keyringToo = keyringToo || inKeyring
		if err != nil {
			errs = append(errs, err)
		} else if ok {
			ended++
		}
	}
	if len(errs) == 0 {
		if err := sessions.RemoveAll(keyringToo); err != nil {
			errs = append(errs, fmt.Errorf("could not clear %s: %w", s.CacheDir, err))
		}
		sessions.RemoveDirIfEmpty()
	}
	if ended == 0 && len(errs) == 0 {
		t.Printf("No sessions in %s; nothing to do.\n", s.CacheDir)
	}
	return errors.Join(errs...)
}

// end ends one session under its lock: it reads every copy, revokes the
// distinct refresh tokens, and deletes everything. ended is false when
// the session had no copy (only a lock or a failure note, which are
// deleted too); inKeyring says whether a copy was in the keyring.
func end(ctx context.Context, s *plugin.Settings, sessions *cache.Sessions, id string, t *terminal.Terminal) (ended, inKeyring bool, err error) {
	lock, err := s.LockSession(ctx, sessions, id, "waiting for another kubectl-device-login to finish with this session", t)
	if err != nil {
		return false, false, err
	}
	copies, err := sessions.Copies(id)
	if err != nil {
		lock.Release()
		return false, false, err
	}
	l := cache.Listed{ID: id, Copies: copies}
	key, known := l.Key()
	var entries []*cache.Entry
	for _, c := range copies {
		if c.Entry != nil {
			entries = append(entries, c.Entry)
		}
		inKeyring = inKeyring || c.Place == cache.InKeyring
	}
	if known && len(entries) > 0 {
		es := s
		if key.ID() != s.Key.ID() {
			es = s.ForSession(key)
		}
		if err := revoke(ctx, es, entries, t); err != nil {
			t.Notef("could not revoke the session at %s (%v); it is deleted here, but the provider may keep it until it expires", key.Issuer, err)
		}
	}
	if err := sessions.Remove(id); err != nil {
		lock.Release()
		what := id
		if known {
			what = fmt.Sprintf("%s (client %s)", key.Issuer, key.ClientID)
		}
		next := "that is fixed"
		if errors.As(err, new(*cache.KeyringError)) {
			next = "the keyring can be used"
		}
		return false, inKeyring, fmt.Errorf("could not sign out of %s: %w; run logout again once %s", what, err, next)
	}
	lock.ReleaseAndRemove()
	newest := l.Newest()
	switch {
	case len(copies) == 0:
		return false, false, nil
	case newest != nil:
		t.Printf("Signed out %s from %s (client %s).\n", plugin.Who(newest.IDToken), newest.Key.Issuer, newest.Key.ClientID)
	case known:
		t.Printf("Deleted the unusable session of %s (client %s).\n", key.Issuer, key.ClientID)
	case copies[0].Place == cache.InKeyring:
		t.Printf("Deleted the unusable index record %s and the keyring items under its name.\n", copies[0].Path)
	default:
		t.Printf("Deleted the unusable session file %s.\n", copies[0].Path)
	}
	return true, inKeyring, nil
}

func revoke(ctx context.Context, s *plugin.Settings, entries []*cache.Entry, t *terminal.Terminal) error {
	p, err := s.Provider(t)
	if err != nil {
		return err
	}
	n, err := plugin.RevokeTokens(ctx, p, entries)
	if err == nil && n == 0 {
		t.Verbosef("%s offers no revocation endpoint; the session is deleted here only", s.Key.Issuer)
	}
	return err
}
