package plugin_test

// Sign-in for the cases the device flow does not fit, through the built
// binary against both real providers: the client credentials grant (CI),
// confidential clients authenticated with HTTP Basic or in the body, and
// PKCE on the device authorization request. The providers count the
// requests; providertest's StrictClientAuth makes them refuse a secret
// sent the other way than the client was registered for, as Ory Hydra
// does (by themselves both take either).

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
	"golang.org/x/oauth2"
)

const grantsSecret = "ci-secret-7a1e39c0d2"

// clientSession is a session of another client than the provider's
// public one.
func clientSession(t *testing.T, p providertest.Provider, clientID string, extra ...string) *session {
	s := newSession(t, p, extra...)
	s.flags[1] = "--client-id=" + clientID
	return s
}

// secretEnv passes the client secret the way CI does.
var secretEnv = []string{"DEVICE_LOGIN_CLIENT_SECRET=" + grantsSecret}

// noSecretInFiles fails when any file under dir holds the client secret.
func noSecretInFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), grantsSecret) {
				t.Errorf("%s holds the client secret", path)
			}
		}
		return nil
	})
}

func TestClientCredentialsGrant(t *testing.T) {
	t.Parallel()
	const aud = "https://kubernetes.test"
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			t.Parallel()
			p := pv.start(t, providertest.Options{ClientSecret: grantsSecret, Audience: aud})
			g := newLeakGuard(t)
			g.secret("the client secret", grantsSecret)
			ctx := testContext(t, 2*time.Minute)
			s := clientSession(t, p, providertest.CIClientID, "--grant-type=client-credentials")
			run := func(name string, inv invocation) result {
				t.Helper()
				r := runPlugin(t, ctx, inv)
				g.result(name, r)
				g.sessions(s.cacheDir)
				return r
			}
			cc := func() int { return s.counts(t).ClientCredentialsGrant }

			// No terminal, no exec info: nobody could see a sign-in code,
			// and none is needed.
			first := run("first", invocation{args: s.args("get-token"), env: secretEnv}).credential(t)
			if first.Status.ExpirationTimestamp == "" {
				t.Errorf("the credential has no expirationTimestamp: the provider's expires_in was lost")
			}
			r := run("cached", invocation{args: s.args("get-token"), env: secretEnv})
			if c := r.credential(t); c.Status.Token != first.Status.Token {
				t.Errorf("second run printed another token; want the cached one")
			}
			if n := cc(); n != 1 {
				t.Errorf("%d client credentials requests after a sign-in and a cache hit, want 1", n)
			}
			if e := s.entry(t); e.RefreshToken != "" || e.IDToken != "" || e.Expiry.IsZero() {
				t.Errorf("session: refresh token %t, ID token %t, expiry %v; want an access token with its expiry only", e.RefreshToken != "", e.IDToken != "", e.Expiry)
			}

			// Past its expiry the token is renewed with the client's
			// credentials again: no refresh token, no device login.
			rewrite(t, s, expire)
			renewed := run("renewed", invocation{args: s.args("get-token"), env: secretEnv}).credential(t)
			if renewed.Status.Token == first.Status.Token {
				t.Errorf("the expired token was served again")
			}
			if n := cc(); n != 2 {
				t.Errorf("%d client credentials requests after the renewal, want 2", n)
			}

			// The secret from a file, and an audience: the token is a JWT
			// for that audience, as a kube-apiserver JWT authenticator
			// would take it.
			file := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(file, []byte(grantsSecret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			fs := clientSession(t, p, providertest.CIClientID, "--grant-type=client-credentials", "--client-secret-file="+file, "--extra-param=audience="+aud)
			c := run("from a file", invocation{args: fs.args("get-token")}).credential(t)
			if _, claims := decodeJWT(t, c.Status.Token); claims["sub"] != providertest.CIClientID || !audIs(claims["aud"], aud) {
				t.Errorf("token claims %v, want sub %s and aud %s", claims, providertest.CIClientID, aud)
			}

			// Every way of getting it wrong fails without asking the
			// provider, or with the provider's refusal, in one sentence.
			for _, bad := range []struct {
				name string
				inv  invocation
				want string
			}{
				{"--client-secret", invocation{args: s.args("get-token", "--client-secret="+grantsSecret)}, "does not take --client-secret"},
				{"--client-secret, the same in the environment", invocation{args: s.args("get-token", "--client-secret="+grantsSecret), env: secretEnv}, "does not take --client-secret"},
				{"no secret", invocation{args: s.args("get-token")}, "needs the client secret"},
				{"wrong secret", invocation{args: clientSession(t, p, providertest.CIClientID, "--grant-type=client-credentials").args("get-token"), env: []string{"DEVICE_LOGIN_CLIENT_SECRET=not-" + grantsSecret}}, "invalid_client"},
			} {
				r := run(bad.name, bad.inv)
				if r.exit == 0 || r.stdout != "" || !strings.Contains(r.stderr, bad.want) || strings.Contains(r.stderr, "Enter the code") {
					t.Errorf("%s: exit %d, stdout %q, stderr:\n%s\nwant a failure saying %q", bad.name, r.exit, r.stdout, r.stderr, bad.want)
				}
			}
			if n := cc(); n != 4 {
				t.Errorf("%d client credentials requests, want 4 (the refused --client-secret and the missing secret never reach the provider)", n)
			}

			// login and logout work for it too; logout revokes the access
			// token with the client's authentication.
			r = run("login --force", invocation{args: s.args("login", "--force"), env: secretEnv})
			if r.exit != 0 || r.stdout != "" {
				t.Errorf("login: exit %d, stdout %q, stderr:\n%s", r.exit, r.stdout, r.stderr)
			}
			before := s.counts(t).Revocation
			r = run("logout", invocation{args: s.args("logout"), env: secretEnv})
			if r.exit != 0 || strings.Contains(r.stderr, "could not revoke") || s.counts(t).Revocation <= before {
				t.Errorf("logout: exit %d, %d revocations before, %d after; stderr:\n%s", r.exit, before, s.counts(t).Revocation, r.stderr)
			}
			if n := s.counts(t).DeviceAuthorization; n != 0 {
				t.Errorf("%d device authorizations, want none", n)
			}
			noSecretInFiles(t, filepath.Dir(s.cacheDir))
			noSecretInFiles(t, filepath.Dir(fs.cacheDir))
		})
	}
}

func TestConfidentialClientAuthentication(t *testing.T) {
	t.Parallel()
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			t.Parallel()
			p := pv.start(t, providertest.Options{ClientSecret: grantsSecret, StrictClientAuth: true})
			g := newLeakGuard(t)
			g.secret("the client secret", grantsSecret)
			ctx := testContext(t, 3*time.Minute)

			for _, c := range []struct {
				clientID string
				flags    []string
			}{
				{providertest.BasicClientID, nil}, // Basic by default
				{providertest.BasicClientID, []string{"--client-auth=basic"}},
				{providertest.PostClientID, []string{"--client-auth=post"}},
			} {
				s := clientSession(t, p, c.clientID, c.flags...)
				name := strings.Join(append([]string{c.clientID}, c.flags...), " ")
				before := s.counts(t)
				r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), env: secretEnv, onCode: s.approve(t)})
				g.result(name+" login", r)
				r.credential(t)
				g.sessions(s.cacheDir)

				// The refresh authenticates the same way.
				rewrite(t, s, expire)
				r = runPlugin(t, ctx, invocation{args: s.args("get-token"), env: secretEnv})
				g.result(name+" refresh", r)
				r.credential(t)
				g.sessions(s.cacheDir)
				refreshToken := s.entry(t).RefreshToken

				// And so does the revocation at logout: the provider would
				// refuse the other way.
				r = runPlugin(t, ctx, invocation{args: s.args("logout"), env: secretEnv})
				g.result(name+" logout", r)
				if r.exit != 0 || strings.Contains(r.stderr, "could not revoke") {
					t.Errorf("%s: logout exit %d, stderr:\n%s", name, r.exit, r.stderr)
				}
				after := s.counts(t)
				if after.DeviceAuthorization-before.DeviceAuthorization != 1 || after.RefreshTokenGrant-before.RefreshTokenGrant != 1 || after.Revocation-before.Revocation != 1 {
					t.Errorf("%s: counts went from %+v to %+v, want one device authorization, one refresh, one revocation", name, before, after)
				}
				client := oauth2.Config{ClientID: c.clientID, ClientSecret: grantsSecret, Endpoint: oauth2.Endpoint{AuthStyle: oauth2.AuthStyleInHeader}}
				if c.clientID == providertest.PostClientID {
					client.Endpoint.AuthStyle = oauth2.AuthStyleInParams
				}
				var refused *oauth2.RetrieveError
				switch err := refreshWith(ctx, p, client, refreshToken); {
				case err == nil:
					t.Errorf("%s: the refresh token still works after logout", name)
				case !errors.As(err, &refused):
					t.Fatalf("%s: could not ask the provider: %v", name, err)
				}
			}

			// The other method than the registered one is refused, with
			// the flag to change.
			for _, c := range []struct {
				clientID string
				flags    []string
				want     string
			}{
				{providertest.PostClientID, nil, "pass --client-auth=post"},
				{providertest.BasicClientID, []string{"--client-auth=post"}, "leave out --client-auth=post"},
			} {
				s := clientSession(t, p, c.clientID, c.flags...)
				r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), env: secretEnv, onCode: s.approve(t)})
				g.result(c.clientID+" refused", r)
				if r.exit == 0 || r.stdout != "" || !strings.Contains(r.stderr, "invalid_client") || !strings.Contains(r.stderr, c.want) ||
					strings.Contains(r.stderr, "Enter the code") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
					t.Errorf("%s %v: exit %d, stderr:\n%s\nwant one line with invalid_client and %q", c.clientID, c.flags, r.exit, r.stderr, c.want)
				}
			}

			// A session signed in with Basic, then logged out with the
			// wrong method: the revocation is refused, and said so.
			s := clientSession(t, p, providertest.BasicClientID)
			r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), env: secretEnv, onCode: s.approve(t)})
			g.result("basic login", r)
			r.credential(t)
			g.sessions(s.cacheDir)
			r = runPlugin(t, ctx, invocation{args: s.args("logout", "--client-auth=post"), env: secretEnv})
			g.result("logout with post", r)
			if !strings.Contains(r.stderr, "could not revoke") || !strings.Contains(r.stderr, "leave out --client-auth=post") {
				t.Errorf("logout with the wrong method: exit %d, stderr:\n%s\nwant the refused revocation explained", r.exit, r.stderr)
			}
		})
	}
}

func TestPKCEOnTheDeviceFlow(t *testing.T) {
	t.Parallel()
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			t.Parallel()
			p := pv.start(t, providertest.Options{PKCEClient: true})
			ctx := testContext(t, 3*time.Minute)
			g := newLeakGuard(t)

			// Each provider takes a challenge from its public client (and
			// ignores it): --pkce=always signs in.
			s := newSession(t, p, "--pkce=always")
			login(t, ctx, s, g, s.approve(t))

			// The client that requires PKCE.
			for _, c := range []struct {
				pkce     string
				requests int // device authorization requests it takes
			}{
				{"always", 1},
				{"auto", 2}, // refused without, then asked again with a challenge
				{"", 2},     // auto is the default
			} {
				s := clientSession(t, p, providertest.PKCEClientID)
				if c.pkce != "" {
					s.flags = append(s.flags, "--pkce="+c.pkce)
				}
				before := s.counts(t)
				r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always", "-v"), onCode: s.approve(t)})
				g.result("pkce="+c.pkce, r)
				r.credential(t)
				g.sessions(s.cacheDir)
				after := s.counts(t)
				if n := after.DeviceAuthorization - before.DeviceAuthorization; n != c.requests {
					t.Errorf("--pkce=%s: %d device authorization requests, want %d", c.pkce, n, c.requests)
				}
				if c.requests == 2 && !strings.Contains(r.stderr, "requires PKCE") {
					t.Errorf("--pkce=%s: -v does not say why it asked twice:\n%s", c.pkce, r.stderr)
				}
				if strings.Count(r.stderr, "Enter the code") != 1 {
					t.Errorf("--pkce=%s: want exactly one sign-in prompt:\n%s", c.pkce, r.stderr)
				}
			}

			s = clientSession(t, p, providertest.PKCEClientID, "--pkce=never")
			r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), onCode: s.approve(t)})
			g.result("pkce=never", r)
			if r.exit == 0 || r.stdout != "" || !strings.Contains(r.stderr, "requires PKCE") || !strings.Contains(r.stderr, "leave out --pkce=never") ||
				strings.Contains(r.stderr, "Enter the code") {
				t.Errorf("--pkce=never: exit %d, stderr:\n%s\nwant a refusal saying to leave out --pkce=never", r.exit, r.stderr)
			}
			// The remembered failure offers a command that does the same.
			r = runPlugin(t, ctx, invocation{args: s.args("get-token")})
			g.result("pkce=never again", r)
			if _, cmd, _ := strings.Cut(r.stderr, "to retry now, run: "); !strings.Contains(cmd, "--pkce=never") {
				t.Errorf("the repeated failure's command leaves out --pkce=never:\n%s", r.stderr)
			}
		})
	}
}

// audIs tells whether an aud claim is exactly this one audience.
func audIs(v any, aud string) bool {
	switch a := v.(type) {
	case string:
		return a == aud
	case []any:
		return len(a) == 1 && a[0] == aud
	}
	return false
}
