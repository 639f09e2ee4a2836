package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicelogin/kubectl-device-login/cache"
)

// GetToken answers one ExecCredential request: from the cache when the
// token is fresh (no network, no lock), else after a refresh or a device
// login done under the session's lock. The credential goes to o.Stdout;
// every message to o.Stderr.
func GetToken(ctx context.Context, o Options) error {
	info, err := ParseExecInfo(o.ExecInfo)
	if err != nil {
		return err
	}
	c, err := o.resolve(info)
	if err != nil {
		return err
	}
	c.openSessions(ctx)
	if e, ok := c.loadFresh(); ok {
		return c.write(e)
	}
	return c.slowPath(ctx)
}

// issued is a token ready for kubectl.
type issued struct {
	token  string
	expiry time.Time // expirationTimestamp; zero for none
}

// loadFresh is the cache-hit path: one file read (or keyring lookup), no
// lock, no network.
func (c *config) loadFresh() (issued, bool) {
	e := c.load(c.hits)
	if tok, exp, ok := c.fresh(e, c.Clock.Now()); ok {
		if c.Verbose {
			// Formatting in local time reads the time zone database: not
			// worth it on every hit when nothing is printed.
			c.verbosef("using the cached token (refresh due at %s)", exp.Local().Format(time.TimeOnly))
		}
		return issued{tok, exp}, true
	}
	return issued{}, false
}

// load reads the session from s, turning unusable files into a note and a
// miss.
func (c *config) load(s cache.Sessions) *cache.Entry {
	e, err := s.Load(c.key)
	var bad *cache.BadFileError
	switch {
	case err == nil:
		return e
	case errors.As(err, &bad):
		c.notef("%v", err)
	case !errors.Is(err, cache.ErrNotFound):
		c.notef("cannot read the cached session: %v", err)
	}
	return nil
}

// slowPath refreshes or signs in while holding the session's lock, after
// checking whether another process did it meanwhile, and remembers a
// failure so that kubectl's re-runs do not start over.
func (c *config) slowPath(ctx context.Context) error {
	started := c.Clock.Now()
	unlock, err := c.connectAndLock(ctx)
	if err != nil {
		return err
	}
	defer unlock()

	e := c.load(c.sessions)
	if tok, exp, ok := c.fresh(e, c.Clock.Now()); ok {
		c.verbosef("another process renewed the session meanwhile")
		return c.write(issued{tok, exp})
	}
	if err := c.recentFailure(started); err != nil {
		return err
	}
	err = c.renew(ctx, e)
	var rem *remembered
	if errors.As(err, &rem) && ctx.Err() == nil && c.RememberFailure > 0 {
		f := cache.Failure{Time: c.Clock.Now(), Parent: os.Getppid(), Message: err.Error()}
		if serr := c.store.RecordFailure(c.key.ID(), f); serr != nil {
			c.verbosef("could not remember the failure: %v", serr)
		}
	}
	return err
}

// remembered marks a failure that later runs repeat instead of retrying.
type remembered struct{ error }

func (r *remembered) Unwrap() error { return r.error }

// recentFailure repeats a remembered failure to kubectl's re-runs and to
// background callers, and forgets it when a person tries again.
func (c *config) recentFailure(started time.Time) error {
	if c.RememberFailure <= 0 {
		return nil
	}
	id := c.key.ID()
	f := c.store.LastFailure(id)
	if f == nil {
		return nil
	}
	now := c.Clock.Now()
	age := now.Sub(f.Time)
	msg := Sanitize(f.Message, 1000)
	switch {
	case !f.Time.Before(started):
		return fmt.Errorf("%s (another kubectl-device-login just tried and failed)", msg)
	case age < 0 || age >= c.RememberFailure:
	case f.Parent == os.Getppid() || !c.humanPresent():
		retry := "run: " + c.loginCommand()
		if c.TokenCache == TokenCacheNone {
			retry = "run the kubectl command again in a terminal"
		}
		return fmt.Errorf("%s (this failed %s ago and is not retried for %s; to retry now, %s)",
			msg, humanDuration(age), humanDuration(c.RememberFailure), retry)
	}
	if err := c.store.ClearFailure(id); err != nil {
		c.verbosef("%v", err)
	}
	return nil
}

// renew gets new tokens: a refresh when there is a refresh token, else a
// device login when one may start.
func (c *config) renew(ctx context.Context, e *cache.Entry) error {
	now := c.Clock.Now()
	if e != nil && e.RefreshToken != "" {
		ne, err := c.refresh(ctx, e)
		var oe *oauthError
		switch {
		case err == nil:
			return c.saveAndWrite(ne)
		case errors.As(err, &oe):
			c.notef("the session has ended at the provider (%s); signing in again", Sanitize(oe.Code, 60))
			if err := c.sessions.Delete(c.key.ID()); err != nil {
				c.notef("%v", err)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			tok, expiry := c.chosen(e)
			if tok != "" && now.Before(expiry) {
				c.notef("could not refresh the session (%v); using the current token, valid until %s", err, expiry.Local().Format(time.TimeOnly))
				return c.write(issued{tok, credentialExpiry(expiry, now)})
			}
			return &remembered{fmt.Errorf("could not refresh the session: %v; try again in a moment (your session is kept)", err)}
		}
	}
	if err := c.mayStartDeviceLogin(); err != nil {
		return &remembered{err}
	}
	ne, err := c.deviceLogin(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &remembered{err}
	}
	c.announce(ne)
	return c.saveAndWrite(ne)
}

// connectAndLock prepares the HTTP client and takes the session's lock:
// the start of every path that may talk to the provider.
func (c *config) connectAndLock(ctx context.Context) (unlock func(), err error) {
	if c.http, err = c.newHTTPClient(); err != nil {
		return nil, err
	}
	return c.lock(ctx)
}

// lock takes the session's lock, telling the person when it has to wait.
// With --token-cache=none there is no shared session to guard, so no lock.
func (c *config) lock(ctx context.Context) (func(), error) {
	if c.TokenCache == TokenCacheNone {
		return func() {}, nil
	}
	lctx, cancel := context.WithTimeout(ctx, c.LockTimeout)
	defer cancel()
	unlock, err := c.store.Lock(lctx, c.key.ID(), func() {
		c.notef("another kubectl-device-login is signing in or refreshing this session; waiting for it to finish")
	})
	switch {
	case err == nil:
		return unlock, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("gave up after waiting %s for another kubectl-device-login to finish signing in; finish or cancel that sign-in and try again", humanDuration(c.LockTimeout))
	default:
		return nil, fmt.Errorf("%v; fix the cache directory or choose another with --cache-dir", err)
	}
}

// mayStartDeviceLogin applies --device-login.
func (c *config) mayStartDeviceLogin() error {
	switch {
	case c.DeviceLogin == DeviceLoginNever:
		return fmt.Errorf("no valid session for %s and --device-login=never; %s", c.key.Issuer, c.signInHint())
	case c.DeviceLogin == DeviceLoginAuto && !c.humanPresent():
		return fmt.Errorf("no valid session for %s, and no terminal to show a sign-in code on; %s", c.key.Issuer, c.signInHint())
	}
	return nil
}

// refresh spends the refresh token once. The caller holds the lock.
func (c *config) refresh(ctx context.Context, e *cache.Entry) (*cache.Entry, error) {
	ep := endpoints{Token: e.TokenEndpoint, Revocation: e.RevocationEndpoint}
	if c.TokenEndpoint != "" {
		ep.Token = c.TokenEndpoint
	}
	if ep.Token == "" {
		return nil, &oauthError{Code: "no token endpoint in the cached session"}
	}
	c.verbosef("refreshing the session at %s", ep.Token)
	issuedAt := c.Clock.Now()
	ts := c.oauth2Config(ep).TokenSource(c.oauth2Context(ctx), &oauth2.Token{RefreshToken: e.RefreshToken})
	tok, err := ts.Token()
	if err != nil {
		return nil, classify(ctx, err)
	}
	return c.newEntry(tok, issuedAt, ep, e), nil
}

// saveAndWrite persists the new session before printing the credential, so
// that a rotated refresh token is never lost; a failed save is a warning,
// since the person still gets the token they just obtained.
func (c *config) saveAndWrite(e *cache.Entry) error {
	if err := c.sessions.Save(e); err != nil {
		c.notef("could not save the session (%v); the token works now, but you will have to sign in again next time", err)
	}
	c.store.ClearFailure(c.key.ID())
	now := c.Clock.Now()
	tok, exp, ok := c.fresh(e, now)
	if tok == "" {
		return fmt.Errorf("the provider returned no %s; request the openid scope for id_token, or use --token=access_token", c.Token)
	}
	if !ok {
		if exp.After(now) {
			return c.write(issued{tok, credentialExpiry(exp, now)})
		}
		c.notef("the new %s already expired at %s by this machine's clock; check the clock", c.Token, exp.Local().Format(time.DateTime))
		return c.write(issued{tok, time.Time{}})
	}
	return c.write(issued{tok, exp})
}

// announce says who signed in, from the ID token's claims.
func (c *config) announce(e *cache.Entry) {
	_, exp := c.chosen(e)
	c.notef("%s as %s; the token is valid until %s", c.style(green, "signed in"), Who(e.IDToken), exp.Local().Format(time.DateTime))
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
	return Sanitize(s, 200)
}

// write prints the credential: the ExecCredential document, or the bare
// token with --output=token.
func (c *config) write(t issued) error {
	var err error
	if c.Output == OutputToken {
		_, err = io.WriteString(c.Stdout, t.token+"\n")
	} else {
		err = WriteCredential(c.Stdout, c.exec.APIVersion, t.token, t.expiry)
	}
	if err != nil {
		return fmt.Errorf("cannot write the credential to stdout: %v", err)
	}
	return nil
}
