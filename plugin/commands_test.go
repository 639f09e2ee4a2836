package plugin_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
	"github.com/devicelogin/kubectl-device-login/plugin/status"
)

// The commands around get-token, run as a person runs them, against the
// real providers.

var profileScopes = []string{"--scope=openid", "--scope=offline_access", "--scope=email", "--scope=profile"}

func TestLoginStatusLogout(t *testing.T) {
	t.Parallel()
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			p := pv.start(t, providertest.Options{})
			s := newSession(t, p, profileScopes...)
			ctx := testContext(t, 2*time.Minute)

			// login: a device login, then who and until when.
			r := runPlugin(t, ctx, invocation{args: s.args("login"), onCode: s.approve(t)})
			if r.exit != 0 || r.stdout != "" {
				t.Fatalf("login: exit %d, stdout %q, stderr:\n%s", r.exit, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, "signed in as alice@example.test (Alice Example, subject alice); the token is valid until") {
				t.Errorf("login does not say who signed in:\n%s", r.stderr)
			}
			first := s.entry(t)
			r.noSecrets(t, first)

			// login again: already signed in, no new login.
			r = runPlugin(t, ctx, invocation{args: s.args("login")})
			if r.exit != 0 || !strings.Contains(r.stderr, "Already signed in as alice@example.test") {
				t.Errorf("second login: exit %d\n%s", r.exit, r.stderr)
			}
			// --force: a new login replaces the session.
			r = runPlugin(t, ctx, invocation{args: s.args("login", "--force"), onCode: s.approve(t)})
			if r.exit != 0 || s.entry(t).RefreshToken == first.RefreshToken {
				t.Fatalf("login --force: exit %d, same session kept\n%s", r.exit, r.stderr)
			}
			// ...and the replaced session is revoked at the provider.
			if c := s.counts(t); c.DeviceAuthorization != 2 || c.Revocation != 1 {
				t.Errorf("counts %+v, want 2 device authorizations and the old session revoked", c)
			}
			if err := refreshWith(ctx, p, publicClient(p), first.RefreshToken); err == nil {
				t.Errorf("the replaced session's refresh token still works at the provider")
			}
			e := s.entry(t)

			// status, text and JSON: everything but the tokens.
			r = runPlugin(t, ctx, invocation{args: []string{"status", "--cache-dir=" + s.cacheDir}})
			for _, want := range []string{p.Issuer(), "(client " + p.ClientID() + ")", "alice@example.test (Alice Example)",
				"scopes:", "email offline_access openid profile", "access_token:", "valid until", "refresh token:", "yes", s.cacheDir} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("status lacks %q:\n%s", want, r.stdout)
				}
			}
			r = runPlugin(t, ctx, invocation{args: []string{"status", "-o", "json", "--cache-dir=" + s.cacheDir}})
			var infos []status.Session
			if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil || len(infos) != 1 {
				t.Fatalf("status -o json: %v\n%s", err, r.stdout)
			}
			if si := infos[0]; si.Issuer != p.Issuer() || si.Subject != "alice" || !si.Valid || !si.Refreshable || si.Expiry == nil {
				t.Errorf("status -o json: %+v", si)
			}
			for _, out := range []string{r.stdout, r.stderr} {
				for _, tok := range []string{e.AccessToken, e.RefreshToken, e.IDToken} {
					if strings.Contains(out, tok) {
						t.Errorf("status printed a token")
					}
				}
			}

			// logout: revoked at the provider, deleted here.
			r = runPlugin(t, ctx, invocation{args: s.args("logout")})
			if r.exit != 0 || !strings.Contains(r.stderr, "Signed out alice@example.test") {
				t.Fatalf("logout: exit %d\n%s", r.exit, r.stderr)
			}
			if c := s.counts(t); c.Revocation != 2 {
				t.Errorf("counts %+v, want a second revocation", c)
			}
			if _, err := os.Stat(filepath.Join(s.cacheDir, filepath.Base(e.Key.ID())+".json")); !os.IsNotExist(err) {
				t.Errorf("session file still there: %v", err)
			}
			if err := refreshWith(ctx, p, publicClient(p), e.RefreshToken); err == nil {
				t.Errorf("the refresh token still works at the provider after logout")
			}
			r = runPlugin(t, ctx, invocation{args: s.args("logout")})
			if r.exit != 0 || !strings.Contains(r.stderr, "nothing to do") {
				t.Errorf("second logout: exit %d\n%s", r.exit, r.stderr)
			}
		})
	}
}

// refreshWith spends a refresh token directly at the provider as client
// (its ClientID, ClientSecret and Endpoint.AuthStyle; the token URL comes
// from discovery).
func refreshWith(ctx context.Context, p providertest.Provider, client oauth2.Config, refreshToken string) error {
	var d struct {
		Token string `json:"token_endpoint"`
	}
	resp, err := httpClientFor(p).Get(p.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		return err
	}
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	client.Endpoint.TokenURL = d.Token
	ctx = context.WithValue(ctx, oauth2.HTTPClient, httpClientFor(p))
	_, err = client.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	return err
}

// publicClient is the provider's public client, for refreshWith.
func publicClient(p providertest.Provider) oauth2.Config {
	return oauth2.Config{ClientID: p.ClientID(), Endpoint: oauth2.Endpoint{AuthStyle: oauth2.AuthStyleInParams}}
}

func TestLogoutWithTheProviderDown(t *testing.T) {
	t.Parallel()
	p := providertest.StartZitadel(t, providertest.Options{})
	s := newSession(t, p)
	ctx := testContext(t, time.Minute)
	runPlugin(t, ctx, invocation{args: s.args("login"), onCode: s.approve(t)})
	p.Close()
	r := runPlugin(t, ctx, invocation{args: s.args("logout", "--request-timeout=5s")})
	if r.exit != 0 || !strings.Contains(r.stderr, "could not revoke the session") || !strings.Contains(r.stderr, "it is deleted here") {
		t.Fatalf("exit %d\n%s", r.exit, r.stderr)
	}
	if entries, _ := filepath.Glob(filepath.Join(s.cacheDir, "*.json")); len(entries) != 0 {
		t.Errorf("session kept: %v", entries)
	}
}

func TestLogoutAll(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	dir := filepath.Join(t.TempDir(), "cache")
	var ps []providertest.Provider
	for _, pv := range providers {
		p := pv.start(t, providertest.Options{})
		ps = append(ps, p)
		s := newSession(t, p)
		s.cacheDir = dir
		s.flags[2] = "--cache-dir=" + dir
		if r := runPlugin(t, ctx, invocation{args: s.args("login"), onCode: s.approve(t)}); r.exit != 0 {
			t.Fatalf("login at %s: %s", pv.name, r.stderr)
		}
	}
	os.WriteFile(filepath.Join(dir, "0000.json"), []byte("garbage"), 0o600)
	r := runPlugin(t, ctx, invocation{args: []string{"logout", "--all", "--cache-dir=" + dir}})
	if r.exit != 0 || strings.Count(r.stderr, "Signed out") != 2 || !strings.Contains(r.stderr, "Deleted the unusable session file") {
		t.Fatalf("logout --all: exit %d\n%s", r.exit, r.stderr)
	}
	for _, p := range ps {
		c, _ := p.Counts(ctx)
		if c.Revocation != 1 {
			t.Errorf("%s: %d revocations, want 1", p.Issuer(), c.Revocation)
		}
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestOutputToken(t *testing.T) {
	t.Parallel()
	p := providertest.StartZitadel(t, providertest.Options{})
	s := newSession(t, p)
	ctx := testContext(t, time.Minute)
	r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always", "-o", "token"), onCode: s.approve(t)})
	if r.exit != 0 || r.stdout != s.entry(t).AccessToken+"\n" {
		t.Fatalf("-o token: exit %d, stdout is the bare token: %t\n%s", r.exit, r.stdout == s.entry(t).AccessToken+"\n", r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	for _, tc := range []struct {
		args []string
		want string
		exit int
	}{
		{[]string{"get-token", "--bogus"}, "device-login: unknown flag: --bogus", 2},
		{[]string{"get-token", "--issuer-url"}, "device-login: flag needs an argument: --issuer-url", 2},
		{[]string{"login", "extra"}, `device-login: unexpected argument "extra"`, 2},
		{[]string{"frobnicate"}, `device-login: unknown command "frobnicate"`, 2},
		{[]string{"get-token", "--client-id=x"}, "device-login: --issuer-url is required", 1},
		{[]string{"get-token", "--issuer-url=http://example.com", "--client-id=x"}, "uses plain http", 1},
		{[]string{"get-token", "--issuer-url=https://example.com", "--client-id=x", "--token=refresh_token"}, "--token must be access_token or id_token", 1},
		{[]string{"get-token", "--issuer-url=https://example.com", "--client-id=x", "--extra-param=noequals"}, "--extra-param \"noequals\" must look like name=value", 1},
		{[]string{"status", "-o", "yaml"}, "--output must be text or json", 1},
		{[]string{"logout", "--all", "--client-id=x"}, "--all signs out of every session", 1},
		{[]string{"completion"}, "name one shell", 1},
	} {
		r := runPlugin(t, ctx, invocation{args: tc.args})
		first := strings.SplitN(r.stderr, "\n", 2)[0]
		if r.exit != tc.exit || !strings.Contains(first, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, first line %q, stdout %q; want exit %d and %q", tc.args, r.exit, first, r.stdout, tc.exit, tc.want)
		}
	}
	r := runPlugin(t, ctx, invocation{args: []string{"get-token", "--help"}})
	if r.exit != 0 || !strings.Contains(r.stdout, "--issuer-url string") || !strings.Contains(r.stdout, "Prints an ExecCredential") {
		t.Errorf("get-token --help: exit %d\n%s", r.exit, r.stdout)
	}
	r = runPlugin(t, ctx, invocation{args: []string{"version"}})
	if r.exit != 0 || !strings.HasPrefix(r.stdout, "kubectl-device-login ") || !strings.Contains(r.stdout, "go1.") {
		t.Errorf("version: %q", r.stdout)
	}
}

func TestCompletionScriptsParse(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	for shell, check := range map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}, "kubectl": {"sh", "-n"}, "powershell": {"pwsh", "-NoProfile", "-Command", "-"}} {
		r := runPlugin(t, ctx, invocation{args: []string{"completion", shell}})
		if r.exit != 0 || !strings.Contains(r.stdout, "kubectl-device_login __complete") {
			t.Errorf("completion %s: exit %d\n%s", shell, r.exit, r.stderr)
			continue
		}
		bin, err := exec.LookPath(check[0])
		if err != nil {
			t.Logf("%s is not installed; only bash's syntax check is required", check[0])
			if shell == "bash" {
				t.Fatal(err)
			}
			continue
		}
		cmd := exec.Command(bin, check[1:]...)
		cmd.Stdin = strings.NewReader(r.stdout)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s rejects the script: %v\n%s", shell, err, out)
		}
	}
}

// TestCompletionPowerShellShape checks the PowerShell script's text, as
// no PowerShell runs here (Debian does not package it): a native argument
// completer for both names of the binary that calls __complete, drops the
// directive line, and whose brackets and quotes pair up.
func TestCompletionPowerShellShape(t *testing.T) {
	t.Parallel()
	r := runPlugin(t, testContext(t, time.Minute), invocation{args: []string{"completion", "powershell"}})
	if r.exit != 0 {
		t.Fatalf("completion powershell: exit %d\n%s", r.exit, r.stderr)
	}
	for _, want := range []string{
		"Register-ArgumentCompleter -Native -CommandName 'kubectl-device_login', 'kubectl-device_login.exe' -ScriptBlock {",
		"param($wordToComplete, $commandAst, $cursorPosition)",
		"& kubectl-device_login __complete @words 2>$null",
		"Select-Object -SkipLast 1",
		"[System.Management.Automation.CompletionResult]::new(",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the PowerShell script lacks %q:\n%s", want, r.stdout)
		}
	}
	// Pairs, outside comments and single-quoted strings (where PowerShell
	// takes every character as it is, '' being a quote).
	var stack []rune
	pairs := map[rune]rune{')': '(', '}': '{', ']': '['}
	for n, line := range strings.Split(r.stdout, "\n") {
		inSingle, inDouble := false, false
		for i, c := range line {
			switch {
			case inSingle:
				inSingle = c != '\''
			case inDouble:
				inDouble = c != '"' || i > 0 && line[i-1] == '`'
			case c == '#':
				goto next
			case c == '\'':
				inSingle = true
			case c == '"':
				inDouble = true
			case c == '(' || c == '{' || c == '[':
				stack = append(stack, c)
			case pairs[c] != 0:
				if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
					t.Fatalf("line %d: unpaired %q:\n%s", n+1, c, line)
				}
				stack = stack[:len(stack)-1]
			}
		}
		if inSingle || inDouble {
			t.Errorf("line %d: unterminated string:\n%s", n+1, line)
		}
	next:
	}
	if len(stack) != 0 {
		t.Errorf("unclosed %q", string(stack))
	}
}
