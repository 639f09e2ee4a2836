package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
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
	unlock, err := c.connectAndLock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if force {
		if err := c.store.Delete(c.key.ID()); err != nil {
			return err
		}
	} else if e := c.load(); e != nil {
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
	if err := c.store.Save(e); err != nil {
		return fmt.Errorf("signed in, but could not save the session: %v", err)
	}
	return nil
}

// Logout deletes the session for these options and revokes its refresh
// token at the provider when the provider has a revocation endpoint. A
// provider that cannot be reached does not stop the logout.
func Logout(ctx context.Context, o Options) error {
	c, err := o.resolve(ExecInfo{APIVersion: APIVersionV1})
	if err != nil {
		return err
	}
	if c.http, err = c.newHTTPClient(); err != nil {
		return err
	}
	path := c.store.Path(c.key.ID())
	e, loadErr := c.store.Load(c.key)
	if errors.Is(loadErr, cache.ErrNotFound) {
		c.store.ClearFailure(c.key.ID())
		fmt.Fprintf(c.Stderr, "No session for %s (client %s) in %s; nothing to do.\n", c.key.Issuer, c.key.ClientID, c.store.Dir)
		return nil
	}
	return c.logout(ctx, path, e)
}

// LogoutAll deletes every session in the cache directory, revoking each
// refresh token at its provider. Only o.CacheDir, o.ClientSecret and the
// transport options are used.
func LogoutAll(ctx context.Context, o Options) error {
	base := o.sessionConfig()
	list, err := base.store.List()
	if err != nil {
		return err
	}
	if len(list) == 0 {
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
		if err := c.logout(ctx, l.Path, l.Entry); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}

// logout revokes (when e is usable) and deletes one session file, under
// the session's lock so that no refresh saves it again meanwhile.
func (c *config) logout(ctx context.Context, path string, e *cache.Entry) error {
	id := strings.TrimSuffix(path[strings.LastIndexAny(path, `/\`)+1:], ".json")
	unlock, err := c.store.Lock(ctx, id, func() {
		c.notef("waiting for another kubectl-device-login to finish with this session")
	})
	if err != nil {
		return fmt.Errorf("cannot lock the session in %s: %v", path, err)
	}
	defer unlock()
	if e != nil {
		who := Who(e.IDToken)
		switch revoked, err := c.revoke(ctx, e); {
		case err != nil:
			c.notef("could not revoke the session at %s (%v); it is deleted here, but the provider may keep it until it expires", e.Key.Issuer, err)
		case !revoked:
			c.verbosef("%s offers no revocation endpoint; the session is deleted here only", e.Key.Issuer)
		}
		fmt.Fprintf(c.Stderr, "Signed out %s from %s (client %s).\n", who, e.Key.Issuer, e.Key.ClientID)
	} else {
		fmt.Fprintf(c.Stderr, "Deleted the unusable session file %s.\n", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot delete %s: %v", path, describeErr(err))
	}
	c.store.ClearFailure(id)
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
func (o *Options) sessionConfig() *config {
	c := &config{Options: *o}
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
	return c
}

// SessionInfo describes one cached session without any of its tokens.
type SessionInfo struct {
	File        string     `json:"file"`
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

// Status lists the sessions in the cache directory and writes them to
// o.Stdout as text or, with format "json", as a JSON array. It never
// prints a token.
func Status(o Options, format string) error {
	c := o.sessionConfig()
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
	now := c.Clock.Now()
	infos := make([]SessionInfo, 0, len(list))
	for _, l := range list {
		si := SessionInfo{File: l.Path}
		if l.Err != nil {
			var bad *cache.BadFileError
			if errors.As(l.Err, &bad) {
				si.Problem = bad.Reason
			} else {
				si.Problem = l.Err.Error()
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
	return writeStatusText(c.Stdout, infos, c.store.Dir, now)
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
		if si.Problem != "" {
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
		fmt.Fprintf(tw, "  file:\t%s\n", si.File)
	}
	return tw.Flush()
}
