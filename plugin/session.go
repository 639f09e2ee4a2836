package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
)

// Login signs in now with a device login and saves the session. When the
// cached session is still fresh it only says so, unless force is set, in
// which case the cached session is discarded first. It prints nothing on
// stdout.
func Login(ctx context.Context, o Options, force bool) error {
	c, err := o.resolve(ExecInfo{APIVersion: APIVersionV1})
	if err != nil {
		return err
	}
	if c.TokenCache == TokenCacheNone {
		return fmt.Errorf("login with --token-cache=none would keep nothing for kubectl to use; with none, kubectl's own get-token signs in on every run, so leave out login, or choose --token-cache=disk or keyring")
	}
	c.openSessions(ctx)
	unlock, err := c.connectAndLock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if force {
		if err := c.sessions.Delete(c.key.ID()); err != nil {
			if c.TokenCache != TokenCacheKeyring {
				return err
			}
			// The new session will be the newer one wherever it is saved.
			c.verbosef("%v", err)
		}
	} else if e := c.load(c.sessions); e != nil {
		if _, _, ok := c.fresh(e, c.Clock.Now()); ok {
			_, exp := c.chosen(e)
			fmt.Fprintf(c.Stderr, "Already signed in as %s; the token is valid until %s. Use --force to sign in again.\n",
				Who(e.IDToken), exp.Local().Format(time.DateTime))
			return nil
		}
	}
	e, err := c.deviceLogin(ctx)
	if err != nil {
		return err
	}
	c.announce(e)
	if err := c.store.ClearFailure(c.key.ID()); err != nil {
		c.verbosef("%v", err)
	}
	if err := c.sessions.Save(e); err != nil {
		return fmt.Errorf("signed in, but could not save the session: %v", err)
	}
	return nil
}

// Logout deletes the session for these options and revokes its refresh
// token at the provider when the provider has a revocation endpoint. A
// provider that cannot be reached does not stop the logout. The session
// is looked for on disk, and in the keyring when --token-cache=keyring or
// when the cache directory holds its keyring index record.
func Logout(ctx context.Context, o Options) error {
	c, err := o.resolve(ExecInfo{APIVersion: APIVersionV1})
	if err != nil {
		return err
	}
	if c.http, err = c.newHTTPClient(); err != nil {
		return err
	}
	id := c.key.ID()
	l := cache.Listed{Path: c.store.Path(id), ID: id}
	var from cache.Sessions = c.store
	if kr := c.keyring(ctx); c.TokenCache == TokenCacheKeyring || kr.HasRecord(id) {
		from = kr
		if kr.HasRecord(id) {
			l.Path, l.Record = kr.RecordPath(id), &cache.KeyringRecord{Key: c.key}
		}
	}
	e, loadErr := from.Load(c.key)
	var bad *cache.BadKeyringEntryError
	if errors.Is(loadErr, cache.ErrNotFound) && l.Record == nil && !errors.As(loadErr, &bad) {
		c.store.ClearFailure(id)
		fmt.Fprintf(c.Stderr, "No session for %s (client %s) in %s; nothing to do.\n", c.key.Issuer, c.key.ClientID, c.store.Dir)
		return nil
	}
	l.Entry = e
	return c.logout(ctx, l, from)
}

// LogoutAll deletes every session in the cache directory, on disk and in
// the keyring (those with an index record), revoking each refresh token at
// its provider. Only o.CacheDir, o.ClientSecret, o.TokenCache and the
// transport options are used. With --token-cache=keyring, or when keyring
// sessions were found, every keyring item of the cache directory is
// removed at the end, including any an interrupted save left behind.
func LogoutAll(ctx context.Context, o Options) error {
	base, err := o.sessionConfig()
	if err != nil {
		return err
	}
	kr := base.keyring(ctx)
	list, err := base.store.List()
	if err != nil {
		return err
	}
	klist, err := kr.List()
	if err != nil {
		return err
	}
	sweep := base.TokenCache == TokenCacheKeyring || len(klist) > 0
	list = append(list, klist...)
	if len(list) == 0 && !sweep {
		fmt.Fprintf(base.Stderr, "No sessions in %s; nothing to do.\n", base.store.Dir)
		return nil
	}
	var failed []string
	for _, l := range list {
		c := base
		if l.Entry != nil {
			eo := o
			eo.IssuerURL, eo.ClientID, eo.Scopes, eo.ExtraParams, eo.Token = l.Entry.Key.Issuer, l.Entry.Key.ClientID, l.Entry.Key.Scopes, l.Entry.Key.ExtraParams, l.Entry.Key.Token
			rc, err := eo.resolve(ExecInfo{APIVersion: APIVersionV1})
			if err == nil {
				c = rc
			}
		}
		if c.http == nil {
			if c.http, err = c.newHTTPClient(); err != nil {
				return err
			}
		}
		var from cache.Sessions = c.store
		if l.Record != nil {
			from = kr
		}
		if err := c.logout(ctx, l, from); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if sweep && len(failed) == 0 {
		if err := kr.DeleteAll(); err != nil {
			failed = append(failed, fmt.Sprintf("could not clear this cache directory's keyring items: %v", err))
		}
	}
	if len(list) == 0 && len(failed) == 0 {
		fmt.Fprintf(base.Stderr, "No sessions in %s; nothing to do.\n", base.store.Dir)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}

// logout revokes (when l.Entry is usable) and deletes one session from
// where it is kept, under the session's lock so that no refresh saves it
// again meanwhile.
func (c *config) logout(ctx context.Context, l cache.Listed, from cache.Sessions) error {
	unlock, err := c.store.Lock(ctx, l.ID, func() {
		c.notef("waiting for another kubectl-device-login to finish with this session")
	})
	if err != nil {
		return fmt.Errorf("cannot lock the session in %s: %v", l.Path, err)
	}
	defer unlock()
	e := l.Entry
	if e != nil {
		switch revoked, err := c.revoke(ctx, e); {
		case err != nil:
			c.notef("could not revoke the session at %s (%v); it is deleted here, but the provider may keep it until it expires", e.Key.Issuer, err)
		case !revoked:
			c.verbosef("%s offers no revocation endpoint; the session is deleted here only", e.Key.Issuer)
		}
	}
	what := "the session in " + l.Path
	if l.Record != nil && l.Record.Key.Issuer != "" {
		what = fmt.Sprintf("%s (client %s)", l.Record.Key.Issuer, l.Record.Key.ClientID)
	}
	if err := from.Delete(l.ID); err != nil {
		if l.Record != nil {
			return fmt.Errorf("could not sign out of %s: %v; its index record %s is kept, so run logout again once the keyring can be used", what, err, l.Path)
		}
		return err
	}
	switch {
	case e != nil:
		fmt.Fprintf(c.Stderr, "Signed out %s from %s (client %s).\n", Who(e.IDToken), e.Key.Issuer, e.Key.ClientID)
	case l.Record != nil && l.Record.Key.Issuer == "":
		fmt.Fprintf(c.Stderr, "Deleted the unusable index record %s and the keyring items under its name.\n", l.Path)
	case l.Record != nil:
		fmt.Fprintf(c.Stderr, "Deleted the unusable keyring session of %s and its index record.\n", what)
	default:
		fmt.Fprintf(c.Stderr, "Deleted the unusable session file %s.\n", l.Path)
	}
	c.store.ClearFailure(l.ID)
	return nil
}

// revoke revokes the session's refresh token (RFC 7009), or its access
// token when there is no refresh token. It reports false when the provider
// has no revocation endpoint.
func (c *config) revoke(ctx context.Context, e *cache.Entry) (bool, error) {
	endpoint := e.RevocationEndpoint
	if endpoint == "" {
		d, err := c.discover(ctx)
		if err != nil {
			return false, err
		}
		endpoint = d.RevocationEndpoint
		if endpoint == "" {
			return false, nil
		}
	}
	if err := checkURL("revocation_endpoint", endpoint); err != nil {
		return false, err
	}
	token, hint := e.RefreshToken, "refresh_token"
	if token == "" {
		token, hint = e.AccessToken, "access_token"
	}
	if token == "" {
		return false, nil
	}
	form := url.Values{"token": {token}, "token_type_hint": {hint}, "client_id": {c.ClientID}}
	if c.ClientSecret != "" {
		form.Set("client_secret", c.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("%s", networkProblem(ctx, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode == http.StatusOK {
		return true, nil
	}
	var oe struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &oe) == nil && oe.Error != "" {
		return false, fmt.Errorf("the provider answered %s", Sanitize(oe.Error, 80))
	}
	return false, fmt.Errorf("the provider answered HTTP %d", resp.StatusCode)
}

// sessionConfig is a config for commands that work on the cache directory
// without a login identity (status, logout --all).
func (o *Options) sessionConfig() (*config, error) {
	c := &config{Options: *o}
	if err := oneOf("--token-cache", &c.TokenCache, []string{TokenCacheDisk, TokenCacheKeyring, TokenCacheNone}); err != nil {
		return nil, err
	}
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir()
	}
	if c.RefreshMargin == 0 {
		c.RefreshMargin = DefaultRefreshMargin
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	c.store = cache.Store{Dir: c.CacheDir}
	return c, nil
}

// SessionInfo describes one cached session without any of its tokens.
type SessionInfo struct {
	// File is the session file, or for a session in the keyring its
	// token-free index record.
	File string `json:"file"`
	// Storage is "disk" or "keyring".
	Storage     string     `json:"storage"`
	Issuer      string     `json:"issuer,omitempty"`
	ClientID    string     `json:"clientID,omitempty"`
	Scopes      []string   `json:"scopes,omitempty"`
	ExtraParams []string   `json:"extraParams,omitempty"`
	Token       string     `json:"token,omitempty"`
	Subject     string     `json:"subject,omitempty"`
	Email       string     `json:"email,omitempty"`
	Name        string     `json:"name,omitempty"`
	Expiry      *time.Time `json:"expiry,omitempty"`
	Valid       bool       `json:"valid"`
	Refreshable bool       `json:"refreshable"`
	LastFailure string     `json:"lastFailure,omitempty"`
	Problem     string     `json:"problem,omitempty"`
}

// Status lists the sessions in the cache directory, on disk and in the
// keyring (through their index records), and writes them to o.Stdout as
// text or, with format "json", as a JSON array. It never prints a token.
// The keyring is read only when the directory holds index records; with
// --token-cache=keyring the text also says whether the keyring can be used
// now.
func Status(o Options, format string) error {
	c, err := o.sessionConfig()
	if err != nil {
		return err
	}
	if format != "" && format != "text" && format != "json" {
		return fmt.Errorf("--output must be text or json, not %q", Sanitize(format, 40))
	}
	if err := c.store.CheckDir(); err != nil {
		return err
	}
	list, err := c.store.List()
	if err != nil {
		return err
	}
	kr := c.keyring(context.Background())
	klist, err := kr.List()
	if err != nil {
		return err
	}
	list = append(list, klist...)
	now := c.Clock.Now()
	infos := make([]SessionInfo, 0, len(list))
	for _, l := range list {
		si := SessionInfo{File: l.Path, Storage: TokenCacheDisk}
		if l.Record != nil {
			si.Storage = TokenCacheKeyring
		}
		if l.Err != nil {
			var bad *cache.BadFileError
			var badKeyring *cache.BadKeyringEntryError
			switch {
			case errors.As(l.Err, &bad):
				si.Problem = bad.Reason
			case errors.As(l.Err, &badKeyring):
				si.Problem = badKeyring.Reason
			default:
				si.Problem = l.Err.Error()
			}
			if r := l.Record; r != nil {
				k := r.Key
				si.Issuer, si.ClientID, si.Scopes, si.ExtraParams, si.Token = k.Issuer, k.ClientID, k.Scopes, k.ExtraParams, k.Token
				si.Refreshable = r.Refreshable
			}
			infos = append(infos, si)
			continue
		}
		e := l.Entry
		k := e.Key
		si.Issuer, si.ClientID, si.Scopes, si.ExtraParams, si.Token = k.Issuer, k.ClientID, k.Scopes, k.ExtraParams, k.Token
		if cl, ok := ParseClaims(e.IDToken); ok {
			si.Subject, si.Email, si.Name = Sanitize(cl.Subject, 200), Sanitize(cl.Email, 200), Sanitize(cl.Name, 200)
		}
		ec := *c
		ec.Token = k.Token
		tok, exp := ec.chosen(e)
		if tok != "" {
			t := exp.UTC()
			si.Expiry = &t
			si.Valid = now.Before(exp)
		}
		si.Refreshable = e.RefreshToken != ""
		if f := c.store.LastFailure(k.ID()); f != nil {
			si.LastFailure = fmt.Sprintf("%s: %s", f.Time.Local().Format(time.DateTime), Sanitize(f.Message, 500))
		}
		infos = append(infos, si)
	}
	if format == "json" {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(infos)
	}
	if err := writeStatusText(c.Stdout, infos, c.store.Dir, now); err != nil {
		return err
	}
	if c.TokenCache == TokenCacheKeyring {
		if err := kr.Check(); err != nil {
			_, err = fmt.Fprintf(c.Stdout, "\nKeyring: cannot be used now (%v); new sessions go to %s instead.\n", err, c.store.Dir)
			return err
		}
		_, err := fmt.Fprintf(c.Stdout, "\nKeyring: usable (service %q).\n", kr.Service())
		return err
	}
	return nil
}

func writeStatusText(w io.Writer, infos []SessionInfo, dir string, now time.Time) error {
	if len(infos) == 0 {
		_, err := fmt.Fprintf(w, "No sessions in %s.\n", dir)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, si := range infos {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		if si.Problem != "" && si.Issuer == "" {
			fmt.Fprintf(tw, "unusable file\t%s\n  problem:\t%s\n", si.File, si.Problem)
			continue
		}
		fmt.Fprintf(tw, "%s\t(client %s)\n", si.Issuer, si.ClientID)
		who := si.Email
		if who == "" {
			who = si.Subject
		}
		if who != "" {
			if si.Name != "" {
				who += " (" + si.Name + ")"
			}
			fmt.Fprintf(tw, "  user:\t%s\n", who)
		}
		fmt.Fprintf(tw, "  scopes:\t%s\n", strings.Join(si.Scopes, " "))
		if len(si.ExtraParams) > 0 {
			fmt.Fprintf(tw, "  extra params:\t%s\n", strings.Join(si.ExtraParams, " "))
		}
		switch {
		case si.Problem != "":
		case si.Expiry == nil:
			fmt.Fprintf(tw, "  %s:\tnone cached\n", si.Token)
		case si.Valid:
			fmt.Fprintf(tw, "  %s:\tvalid until %s (%s left)\n", si.Token, si.Expiry.Local().Format(time.DateTime), humanDuration(si.Expiry.Sub(now)))
		default:
			fmt.Fprintf(tw, "  %s:\texpired at %s\n", si.Token, si.Expiry.Local().Format(time.DateTime))
		}
		refresh := "no (a device login is needed when the token expires)"
		if si.Refreshable {
			refresh = "yes"
		}
		fmt.Fprintf(tw, "  refresh token:\t%s\n", refresh)
		if si.LastFailure != "" {
			fmt.Fprintf(tw, "  last failure:\t%s\n", si.LastFailure)
		}
		if si.Problem != "" {
			fmt.Fprintf(tw, "  problem:\t%s\n", si.Problem)
		}
		if si.Storage == TokenCacheKeyring {
			fmt.Fprintf(tw, "  stored:\tin the keyring (index record %s)\n", si.File)
		} else {
			fmt.Fprintf(tw, "  file:\t%s\n", si.File)
		}
	}
	return tw.Flush()
}
