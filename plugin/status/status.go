// Package status lists the sessions of a cache directory, on disk and in
// the keyring, with every copy that logout would end. It never prints a
// token.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// Session describes one cached session without any of its tokens. Its
// strings are sanitized: they may come from files and tokens.
type Session struct {
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
	// Superseded counts refresh tokens of replaced sessions whose
	// revocation was not confirmed; logout revokes them.
	Superseded  int    `json:"superseded,omitempty"`
	LastFailure string `json:"lastFailure,omitempty"`
	// Copies are every place that holds this session, as logout would
	// end them.
	Copies  []Copy `json:"copies"`
	Problem string `json:"problem,omitempty"`
}

// Copy is one place that holds a session.
type Copy struct {
	// Place is "file", "keyring" (Path is then its index record) or
	// "temporary file" (left by an interrupted save).
	Place string `json:"place"`
	Path  string `json:"path"`
}

// Formats lists the output formats of Status; the first is the default.
func Formats() []string { return []string{"text", "json"} }

// Status writes the sessions of the cache directory of s to w as text or,
// with format "json", as a JSON array. The keyring is read only for
// sessions that have an index record; with --token-cache=keyring the text
// also says whether the keyring can be used now.
func Status(ctx context.Context, s *plugin.Settings, t *terminal.Terminal, w io.Writer, format string) error {
	if format != "" && !slices.Contains(Formats(), format) {
		return fmt.Errorf("--output must be %s, not %q", strings.Join(Formats(), " or "), terminal.Sanitize(format, 40))
	}
	sessions := s.Sessions(ctx, t)
	list, err := sessions.List()
	if err != nil {
		return err
	}
	now := s.Clock.Now()
	out := make([]Session, 0, len(list))
	for _, l := range list {
		out = append(out, describe(l, now))
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	// The one place the cache directory is made fit for the terminal: a
	// person or a script names it.
	dir := terminal.Sanitize(s.CacheDir, 500)
	if err := writeText(w, out, dir, now); err != nil {
		return err
	}
	if s.TokenCache == cache.Keyring {
		if err := sessions.CheckKeyring(); err != nil {
			_, err = fmt.Fprintf(w, "\nKeyring: cannot be used now (%s); new sessions go to %s instead.\n", terminal.Sanitize(err.Error(), 300), dir)
			return err
		}
		_, err := fmt.Fprintf(w, "\nKeyring: usable (service %q).\n", terminal.Sanitize(sessions.KeyringService(), 300))
		return err
	}
	return nil
}

// describe summarizes one session from its newest readable copy.
func describe(l cache.Listed, now time.Time) Session {
	si := Session{Storage: plugin.TokenCacheDisk}
	var problems []string
	for _, c := range l.Copies {
		if c.Place == cache.InKeyring {
			si.Storage = plugin.TokenCacheKeyring
		}
		path := terminal.Sanitize(c.Path, 500)
		if si.File == "" || c.Place == cache.InKeyring {
			si.File = path
		}
		si.Copies = append(si.Copies, Copy{Place: string(c.Place), Path: path})
		if c.Err != nil {
			problems = append(problems, reason(c.Err))
		}
		if c.Record != nil {
			si.Refreshable = si.Refreshable || c.Record.Refreshable
		}
	}
	si.Problem = terminal.Sanitize(strings.Join(problems, "; "), 1000)
	if k, ok := l.Key(); ok {
		si.Issuer, si.ClientID, si.Token = terminal.Sanitize(k.Issuer, 300), terminal.Sanitize(k.ClientID, 200), terminal.Sanitize(k.Token, 40)
		for _, sc := range k.Scopes {
			si.Scopes = append(si.Scopes, terminal.Sanitize(sc, 200))
		}
		for _, p := range k.ExtraParams {
			si.ExtraParams = append(si.ExtraParams, terminal.Sanitize(p, 300))
		}
	}
	if e := l.Newest(); e != nil {
		if cl, ok := plugin.ParseClaims(e.IDToken); ok {
			si.Subject, si.Email, si.Name = terminal.Sanitize(cl.Subject, 200), terminal.Sanitize(cl.Email, 200), terminal.Sanitize(cl.Name, 200)
		}
		if expiry, ok := plugin.Expiry(e); ok {
			t := expiry.UTC()
			si.Expiry = &t
			si.Valid = now.Before(expiry)
		}
		si.Refreshable = e.RefreshToken != ""
		si.Superseded = len(e.Superseded)
	}
	if f := l.Failure; f != nil {
		si.LastFailure = fmt.Sprintf("%s: %s", f.Time.Local().Format(time.DateTime), terminal.Sanitize(f.Message, 500))
	}
	return si
}

// reason is why a copy cannot be read, without the path it names.
func reason(err error) string {
	var bad *cache.BadFileError
	var badKeyring *cache.BadKeyringEntryError
	switch {
	case errors.As(err, &bad):
		return bad.Reason
	case errors.As(err, &badKeyring):
		return badKeyring.Reason
	}
	return err.Error()
}

func writeText(w io.Writer, list []Session, dir string, now time.Time) error {
	if len(list) == 0 {
		_, err := fmt.Fprintf(w, "No sessions in %s.\n", dir)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, si := range list {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		if si.Issuer == "" {
			fmt.Fprintf(tw, "unusable session\t%s\n  problem:\t%s\n", si.File, si.Problem)
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
		case si.Expiry == nil && si.Problem != "":
		case si.Expiry == nil:
			fmt.Fprintf(tw, "  %s:\tnone cached\n", si.Token)
		case si.Valid:
			fmt.Fprintf(tw, "  %s:\tvalid until %s (%s left)\n", si.Token, si.Expiry.Local().Format(time.DateTime), terminal.HumanDuration(si.Expiry.Sub(now)))
		default:
			fmt.Fprintf(tw, "  %s:\texpired at %s\n", si.Token, si.Expiry.Local().Format(time.DateTime))
		}
		refresh := "no (a device login is needed when the token expires)"
		if si.Refreshable {
			refresh = "yes"
		}
		fmt.Fprintf(tw, "  refresh token:\t%s\n", refresh)
		if si.Superseded > 0 {
			fmt.Fprintf(tw, "  replaced sessions:\t%d not yet revoked at the provider (logout revokes them)\n", si.Superseded)
		}
		if si.LastFailure != "" {
			fmt.Fprintf(tw, "  last failure:\t%s\n", si.LastFailure)
		}
		if si.Problem != "" {
			fmt.Fprintf(tw, "  problem:\t%s\n", si.Problem)
		}
		for _, c := range si.Copies {
			switch cache.Place(c.Place) {
			case cache.InKeyring:
				fmt.Fprintf(tw, "  stored:\tin the keyring (index record %s)\n", c.Path)
			case cache.InTempFile:
				fmt.Fprintf(tw, "  also:\t%s (left by an interrupted save; logout ends it too)\n", c.Path)
			default:
				fmt.Fprintf(tw, "  file:\t%s\n", c.Path)
			}
		}
	}
	return tw.Flush()
}
