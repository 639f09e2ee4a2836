package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// GetToken answers one ExecCredential request: from the cache when the
// token is fresh (no network, no lock), else after a refresh, a client
// credentials request or a device login done under the session's lock.
// Messages for people go to t; the caller prints the credential.
func GetToken(ctx context.Context, s *Settings, t *terminal.Terminal) (Credential, error) {
	sessions := s.Sessions(ctx, t)
	if e, err := sessions.Load(s.Key); err == nil {
		if cred, ok := s.fresh(e, s.Clock.Now()); ok {
			if t.Verbose() {
				// Formatting in local time reads the time zone database:
				// not worth it on every hit when nothing is printed.
				t.Verbosef("using the cached token (renewal due at %s)", cred.Expiry.Local().Format(time.TimeOnly))
			}
			return cred, nil
		}
	}
	// A miss, or a file that cannot be used: the slow path reads again
	// under the lock and says what is wrong.
	return s.slowPath(ctx, sessions, t)
}

// slowPath renews the session while holding its lock, after checking
// whether another process did it meanwhile, and remembers a failure so
// that kubectl's re-runs do not start over.
func (s *Settings) slowPath(ctx context.Context, sessions *cache.Sessions, t *terminal.Terminal) (Credential, error) {
	started := s.Clock.Now()
	p, err := s.Provider(t)
	if err != nil {
		return Credential{}, err
	}
	lock, err := s.lock(ctx, sessions, t)
	if err != nil {
		return Credential{}, err
	}
	defer lock.Release()

	e, err := s.current(sessions)
	if err != nil {
		return Credential{}, err
	}
	if cred, ok := s.fresh(e, s.Clock.Now()); ok {
		t.Verbosef("another process renewed the session meanwhile")
		return cred, nil
	}
	if err := s.recentFailure(sessions, started, t); err != nil {
		// Not retrying never means withholding a token that is still
		// valid (one that looks issued in the future, after the clock
		// went back, is not fresh but may be).
		if cred, _, ok := s.valid(e, s.Clock.Now()); ok {
			return cred, nil
		}
		return Credential{}, err
	}
	cred, err := s.renew(ctx, sessions, p, e, t)
	var rem *remembered
	if errors.As(err, &rem) && ctx.Err() == nil && s.remembersFailures() {
		f := cache.Failure{Time: s.Clock.Now(), Parent: os.Getppid(), Message: err.Error()}
		if serr := sessions.RecordFailure(s.Key.ID(), f); serr != nil {
			t.Verbosef("could not remember the failure: %v", serr)
		}
	}
	return cred, err
}

// current reads the session under its lock. A keyring that holds the
// session but cannot be read stops everything: a new sign-in would
// replace a session nobody could revoke.
func (s *Settings) current(sessions *cache.Sessions) (*cache.Entry, error) {
	e, err := sessions.Current(s.Key)
	var kerr *cache.KeyringError
	switch {
	case err == nil:
		return e, nil
	case errors.Is(err, cache.ErrNotFound):
		return nil, nil
	case errors.As(err, &kerr):
		return nil, keyringUnreadable(kerr)
	}
	return nil, err
}

func keyringUnreadable(err *cache.KeyringError) error {
	what := "cannot be read"
	if err.Locked {
		what = "is locked"
	}
	return fmt.Errorf("the keyring holds this session but %s (%v); unlock the keyring (the desktop's keyring, or the macOS keychain) and run the command again. No new sign-in was started, so as not to replace a session that could not be read", what, err)
}

// remembered marks a failure that later runs repeat instead of retrying.
type remembered struct{ error }

func (r *remembered) Unwrap() error { return r.error }

// remembersFailures tells whether failures are remembered: not when
// --remember-failure=0 disables it, nor without a cache to keep them in.
func (s *Settings) remembersFailures() bool {
	return s.RememberFailure > 0 && s.TokenCache != cache.Nowhere
}

// recentFailure repeats a remembered failure to kubectl's re-runs and to
// background callers, and forgets it when a person tries again. A note
// counts only when it lies between now and the remembering time before
// now; one from the future (a clock that jumped back) is removed.
func (s *Settings) recentFailure(sessions *cache.Sessions, started time.Time, t *terminal.Terminal) error {
	if !s.remembersFailures() {
		return nil
	}
	f := sessions.LastFailure(s.Key.ID())
	if f == nil {
		return nil
	}
	now := s.Clock.Now()
	age := now.Sub(f.Time)
	msg := terminal.Sanitize(f.Message, 1000)
	switch {
	case age < 0:
		t.Verbosef("ignoring a failure note dated %s, in the future", f.Time.Local().Format(time.DateTime))
	case !f.Time.Before(started):
		return fmt.Errorf("%s (another kubectl-device-login just tried and failed)", msg)
	case age >= s.RememberFailure:
	case f.Parent == os.Getppid() || !s.humanPresent():
		login := s.loginCommand()
		retry := "to retry now, run: " + login
		if strings.Contains(msg, login) {
			retry = "to retry now, run that command"
		}
		when := terminal.HumanDuration(age) + " ago"
		if age < time.Second {
			when = "just now"
		}
		return fmt.Errorf("%s (this failed %s and is not retried for %s; %s)", msg, when, terminal.HumanDuration(s.RememberFailure), retry)
	}
	s.clearFailure(sessions, t)
	return nil
}

// clearFailure forgets the session's remembered failure, if any, and
// says under -v only when that fails.
func (s *Settings) clearFailure(sessions *cache.Sessions, t *terminal.Terminal) {
	if err := sessions.ClearFailure(s.Key.ID()); err != nil {
		t.Verbosef("%v", err)
	}
}

// renew gets new tokens: the client's credentials for that grant, the
// refresh token when there is one, else a device login when one may
// start. A token that is still valid is served rather than withheld
// whenever renewing cannot happen now.
func (s *Settings) renew(ctx context.Context, sessions *cache.Sessions, p *provider.Client, e *cache.Entry, t *terminal.Terminal) (Credential, error) {
	if s.GrantType == GrantClientCredentials {
		return s.clientCredentials(ctx, sessions, p, e, t)
	}
	var cannotSave error
	if e != nil && e.RefreshToken != "" {
		cred, left, err := s.refresh(ctx, sessions, p, e, t)
		if left == nil {
			return cred, err
		}
		e, cannotSave = left.entry, left.cannotSave
	}
	now := s.Clock.Now()
	if cred, expiry, ok := s.valid(e, now); ok {
		t.Verbosef("the session cannot be renewed silently; using its token, valid until %s", expiry.Local().Format(time.TimeOnly))
		return cred, nil
	}
	if err := s.mayStartDeviceLogin(); err != nil {
		if cannotSave != nil {
			return Credential{}, &remembered{fmt.Errorf("the session cannot be refreshed because its successor could not be saved (%v); its refresh token is kept unspent. Make the cache directory writable, or choose another with --cache-dir", cannotSave)}
		}
		return Credential{}, &remembered{err}
	}
	ne, err := s.deviceLogin(ctx, p, t)
	if err != nil {
		if ctx.Err() != nil {
			return Credential{}, ctx.Err()
		}
		return Credential{}, &remembered{err}
	}
	s.announce(ne, t)
	s.save(sessions, ne, t)
	return s.issue(ne, t)
}

// afterRefresh is what is left when a refresh did not give a token: the
// session without a refresh token the provider rejected, or the session
// whose refresh token was kept because its successor could not be saved.
type afterRefresh struct {
	entry      *cache.Entry
	cannotSave error
}

// refresh spends the refresh token once, after taking the room to save
// its successor: when the cache directory cannot take a save (read-only,
// full), the refresh token is not spent at all, since a provider with
// reuse detection ends the whole session when a spent token is offered
// again. It returns a credential and an error when it is done, or what is
// left for the caller to go on with.
func (s *Settings) refresh(ctx context.Context, sessions *cache.Sessions, p *provider.Client, e *cache.Entry, t *terminal.Terminal) (Credential, *afterRefresh, error) {
	now := s.Clock.Now()
	pending, err := sessions.Prepare(s.Key.ID(), len(e.AccessToken)+len(e.RefreshToken)+len(e.IDToken))
	if err != nil {
		if cred, expiry, ok := s.valid(e, now); ok {
			t.Notef("cannot save sessions (%v), so the refresh token is not spent; using the current token, valid until %s", err, expiry.Local().Format(time.TimeOnly))
			return cred, nil, nil
		}
		t.Notef("cannot save sessions (%v), so the refresh token is not spent", err)
		return Credential{}, &afterRefresh{entry: e, cannotSave: err}, nil
	}
	ep := provider.Endpoints{Token: e.TokenEndpoint, Revocation: e.RevocationEndpoint}
	if s.TokenEndpoint != "" {
		ep.Token = s.TokenEndpoint
	}
	if ep.Token == "" {
		if ep, err = p.TokenEndpoints(ctx); err != nil {
			pending.Cancel()
			return Credential{}, nil, &remembered{fmt.Errorf("cannot find the provider's token endpoint: %w", err)}
		}
	}
	tok, err := p.Refresh(ctx, ep, e.RefreshToken)
	switch {
	case err == nil:
		ne := newEntry(s.Key, tok, e)
		s.commit(sessions, pending, ne, e.RefreshToken, t)
		cred, err := s.issue(ne, t)
		return cred, nil, err
	case ctx.Err() != nil:
		pending.Cancel()
		return Credential{}, nil, ctx.Err()
	case provider.GrantRejected(err):
		// The one answer that says the refresh token is dead: drop it,
		// keep whatever else of the session is still good.
		t.Notef("the provider no longer accepts the session's refresh token (%v)", err)
		left := *e
		left.RefreshToken = ""
		s.commit(sessions, pending, &left, e.RefreshToken, t)
		return Credential{}, &afterRefresh{entry: &left}, nil
	}
	pending.Cancel()
	if cred, expiry, ok := s.valid(e, now); ok {
		t.Notef("could not refresh the session (%v); using the current token, valid until %s, and trying again next time", err, expiry.Local().Format(time.TimeOnly))
		return cred, nil, nil
	}
	next := "try again in a moment (the session is kept)"
	if !provider.Retryable(err) {
		next = "the session is kept, but this will not change by itself: check the provider and the client's settings"
	}
	return Credential{}, nil, &remembered{fmt.Errorf("could not refresh the session: %w; %s", err, next)}
}

// commit saves e in place of the session whose refresh token spent was
// just used. When that fails, no copy may keep offering the spent token.
func (s *Settings) commit(sessions *cache.Sessions, pending *cache.Pending, e *cache.Entry, spent string, t *terminal.Terminal) {
	err := pending.Commit(e)
	if err == nil {
		s.clearFailure(sessions, t)
		return
	}
	if ferr := sessions.Forget(s.Key.ID(), spent); ferr != nil {
		t.Notef("could not save the renewed session (%v), and the spent refresh token could not be removed (%v); run kubectl device-login logout before the next command, or the provider may end the session when it sees that token again", err, ferr)
		return
	}
	t.Notef("could not save the renewed session (%v); this command gets its token, and the next one will need a new sign-in", err)
}

// clientCredentials gets a token with the client's own credentials.
func (s *Settings) clientCredentials(ctx context.Context, sessions *cache.Sessions, p *provider.Client, e *cache.Entry, t *terminal.Terminal) (Credential, error) {
	now := s.Clock.Now()
	tok, err := p.ClientCredentials(ctx)
	switch {
	case err == nil:
		ne := newEntry(s.Key, tok, nil)
		s.save(sessions, ne, t)
		return s.issue(ne, t)
	case ctx.Err() != nil:
		return Credential{}, ctx.Err()
	}
	if cred, expiry, ok := s.valid(e, now); ok {
		t.Notef("could not get a new token (%v); using the current one, valid until %s", err, expiry.Local().Format(time.TimeOnly))
		return cred, nil
	}
	switch {
	case provider.ClientAuthRejected(err):
		// The provider's answer already says what to check.
		return Credential{}, &remembered{fmt.Errorf("could not get a token with the client's credentials: %w", err)}
	case provider.Retryable(err):
		return Credential{}, &remembered{fmt.Errorf("could not get a token with the client's credentials: %w; try again in a moment", err)}
	}
	return Credential{}, &remembered{fmt.Errorf("could not get a token with the client's credentials: %w; check --client-id, --scope and --extra-param, and that the client may use the client_credentials grant", err)}
}

// lock takes the session's lock (see LockSession).
func (s *Settings) lock(ctx context.Context, sessions *cache.Sessions, t *terminal.Terminal) (*cache.Lock, error) {
	return s.LockSession(ctx, sessions, s.Key.ID(), "another kubectl-device-login is signing in or refreshing this session; waiting for it to finish", t)
}

// LockSession takes the lock of the session with this ID, waiting at most
// LockTimeout and noting waiting on t when it has to wait; on a timeout
// it says what to do.
func (s *Settings) LockSession(ctx context.Context, sessions *cache.Sessions, id, waiting string, t *terminal.Terminal) (*cache.Lock, error) {
	lctx, cancel := context.WithTimeout(ctx, s.LockTimeout)
	defer cancel()
	l, err := sessions.Lock(lctx, id, func() { t.Notef("%s", waiting) })
	switch {
	case err == nil:
		return l, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("gave up after waiting %s for another kubectl-device-login to finish signing in; finish or cancel that sign-in and try again", terminal.HumanDuration(s.LockTimeout))
	}
	return nil, err
}

// mayStartDeviceLogin applies --device-login.
func (s *Settings) mayStartDeviceLogin() error {
	switch {
	case s.DeviceLogin == DeviceLoginNever:
		return fmt.Errorf("no valid session for %s and --device-login=never; %s", s.Key.Issuer, s.signInHint())
	case s.DeviceLogin == DeviceLoginAuto && !s.humanPresent():
		return fmt.Errorf("no valid session for %s, and no terminal to show a sign-in code on; %s", s.Key.Issuer, s.signInHint())
	}
	return nil
}

// deviceLogin runs the Device Authorization Grant: it asks the provider
// for a code, shows it, and polls until the person approves.
func (s *Settings) deviceLogin(ctx context.Context, p *provider.Client, t *terminal.Terminal) (*cache.Entry, error) {
	d, err := p.StartDeviceLogin(ctx)
	if err != nil {
		return nil, err
	}
	t.ShowSignIn(terminal.SignIn{
		Issuer:                  s.Key.Issuer,
		UserCode:                d.UserCode,
		VerificationURI:         d.VerificationURI,
		VerificationURIComplete: d.VerificationURIComplete,
		Expiry:                  d.Expiry,
	}, s.Clock.Now())
	tok, err := p.Poll(ctx, d, t)
	if err != nil {
		return nil, err
	}
	return newEntry(s.Key, tok, nil), nil
}

// save saves a new session; a failed save is a warning, since the person
// still gets the token they just obtained.
func (s *Settings) save(sessions *cache.Sessions, e *cache.Entry, t *terminal.Terminal) {
	if err := sessions.Save(e); err != nil {
		t.Notef("could not save the session (%v); the token works for this command, but the next one will need a new sign-in", err)
		return
	}
	s.clearFailure(sessions, t)
}

// issue is the credential of a session just obtained.
func (s *Settings) issue(e *cache.Entry, t *terminal.Terminal) (Credential, error) {
	now := s.Clock.Now()
	if cred, ok := s.fresh(e, now); ok {
		return cred, nil
	}
	token, expiry := chosen(e)
	if token == "" {
		return Credential{}, fmt.Errorf("the provider returned no %s; request the openid scope for id_token, or use --token=access_token", e.Key.Token)
	}
	if !expiry.After(now) {
		t.Notef("the new %s has no lifetime left (the provider's expires_in, or this machine's clock); it is used for this command only", e.Key.Token)
	}
	return s.credential(token, expiry, now), nil
}

// announce says who signed in, from the ID token's claims.
func (s *Settings) announce(e *cache.Entry, t *terminal.Terminal) {
	_, expiry := chosen(e)
	t.Notef("%s as %s; the token is valid until %s", t.Green("signed in"), Who(e.IDToken), expiry.Local().Format(time.DateTime))
}
