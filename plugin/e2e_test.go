package plugin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// These scenarios run the built plugin binary against real providers: npm
// oidc-provider under Node and zitadel's op in process. The "person"
// approves over HTTP like a browser, after reading the code from stderr.

func TestDeviceLoginThenCacheHitWithTheProviderGone(t *testing.T) {
	t.Parallel()
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			p := pv.start(t, providertest.Options{})
			s := newSession(t, p)
			ctx := testContext(t, time.Minute)

			r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), onCode: s.approve(t)})
			cred := r.credential(t)
			if cred.APIVersion != plugin.APIVersionV1 {
				t.Errorf("apiVersion %q without KUBERNETES_EXEC_INFO", cred.APIVersion)
			}
			c := s.counts(t)
			if c.DeviceAuthorization != 1 || c.Discovery != 1 {
				t.Errorf("provider counts %+v, want one discovery and one device authorization", c)
			}
			if sub, status := userinfo(t, p, cred.Status.Token); status != 200 || sub != p.Subject() {
				t.Errorf("the provider does not honour the token: userinfo %d, sub %q", status, sub)
			}
			e := s.entry(t)
			if e.AccessToken != cred.Status.Token || e.RefreshToken == "" || e.IDToken == "" || e.TokenEndpoint == "" {
				t.Errorf("cached session incomplete: access %t refresh %t id %t endpoint %q",
					e.AccessToken != "", e.RefreshToken != "", e.IDToken != "", e.TokenEndpoint)
			}
			for _, want := range []string{"Enter the code", p.Issuer(), "signed in as " + p.Subject()} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			r.noSecrets(t, e)

			// The provider goes away: a fresh token is still served, from
			// the cache alone, quietly.
			p.Close()
			r2 := runPlugin(t, ctx, invocation{args: s.args("get-token"),
				env: []string{`KUBERNETES_EXEC_INFO={"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}`}})
			cred2 := r2.credential(t)
			if cred2.Status.Token != cred.Status.Token || cred2.APIVersion != plugin.APIVersionV1beta1 {
				t.Errorf("cache hit gave a different token or apiVersion %q", cred2.APIVersion)
			}
			if r2.stderr != "" {
				t.Errorf("a cache hit wrote to stderr: %q", r2.stderr)
			}
		})
	}
}

func TestRefreshAfterExpiryRotatesAndPersists(t *testing.T) {
	t.Parallel()
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			// 4 s tokens: the 1 min margin is capped at half, so a
			// token is refreshed 2 s after it was issued.
			p := pv.start(t, providertest.Options{AccessTokenTTL: 4 * time.Second, IDTokenTTL: 4 * time.Second})
			s := newSession(t, p)
			ctx := testContext(t, time.Minute)
			r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), onCode: s.approve(t)})
			first := r.credential(t)
			e1 := s.entry(t)

			for i := 0; i < 2; i++ {
				time.Sleep(2500 * time.Millisecond)
				r = runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=never")})
				cred := r.credential(t)
				e2 := s.entry(t)
				if cred.Status.Token == first.Status.Token || e2.RefreshToken == e1.RefreshToken {
					t.Fatalf("refresh %d did not rotate: same access token %t, same refresh token %t\n%s", i+1,
						cred.Status.Token == first.Status.Token, e2.RefreshToken == e1.RefreshToken, r.stderr)
				}
				if sub, status := userinfo(t, p, cred.Status.Token); status != 200 || sub != p.Subject() {
					t.Errorf("refreshed token not honoured: %d", status)
				}
				r.noSecrets(t, e1)
				r.noSecrets(t, e2)
				first, e1 = cred, e2
			}
			c := s.counts(t)
			if c.RefreshTokenGrant != 2 || c.DeviceAuthorization != 1 {
				t.Errorf("provider counts %+v, want 2 refreshes, 1 device authorization, 1 discovery", c)
			}
		})
	}
}

func TestRevokedSessionSignsInAgain(t *testing.T) {
	t.Parallel()
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			p := pv.start(t, providertest.Options{AccessTokenTTL: 2 * time.Second})
			s := newSession(t, p)
			ctx := testContext(t, time.Minute)
			runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), onCode: s.approve(t)}).credential(t)
			if err := p.RevokeRefreshToken(ctx, s.entry(t).RefreshToken); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond)

			// The refresh token is refused, but the access token is still
			// valid for a moment: it is served, not withheld.
			before := s.entry(t)
			r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--remember-failure=0")})
			if r.exit != 0 || r.credential(t).Status.Token != before.AccessToken || !strings.Contains(r.stderr, "no longer accepts the session's refresh token") {
				t.Fatalf("exit %d, stderr:\n%s", r.exit, r.stderr)
			}
			if after := s.entry(t); after.RefreshToken != "" || after.AccessToken != before.AccessToken {
				t.Errorf("the refused refresh token was kept, or the valid access token dropped")
			}
			time.Sleep(time.Until(before.Expiry) + 100*time.Millisecond)

			// Nothing valid is left, and no terminal: no device login
			// starts, and the message says how to sign in. (Not
			// remembered, so that the next run may sign in at once.)
			r = runPlugin(t, ctx, invocation{args: s.args("get-token", "--remember-failure=0")})
			if r.exit == 0 || !strings.Contains(r.stderr, "no valid session") || !strings.Contains(r.stderr, "kubectl device-login login") {
				t.Fatalf("exit %d, stderr:\n%s", r.exit, r.stderr)
			}
			if c := s.counts(t); c.DeviceAuthorization != 1 {
				t.Errorf("a device login started with no one to see it: %+v", c)
			}
			// A person: a new device login.
			r = runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), onCode: s.approve(t)})
			r.credential(t)
			if c := s.counts(t); c.DeviceAuthorization != 2 {
				t.Errorf("counts %+v, want a second device authorization", c)
			}
		})
	}
}

func TestDeniedLoginIsAClearError(t *testing.T) {
	t.Parallel()
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			p := pv.start(t, providertest.Options{})
			s := newSession(t, p)
			r := runPlugin(t, testContext(t, time.Minute), invocation{args: s.args("get-token", "--device-login=always"), onCode: s.deny(t)})
			if r.exit != 1 || r.stdout != "" || !strings.Contains(r.stderr, "the sign-in was denied at the provider") {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.exit, r.stdout, r.stderr)
			}
		})
	}
}

func TestExpiredCodeEndsWithinItsLifetime(t *testing.T) {
	t.Parallel()
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			p := pv.start(t, providertest.Options{DeviceCodeTTL: 3 * time.Second})
			s := newSession(t, p)
			r := runPlugin(t, testContext(t, time.Minute), invocation{args: s.args("get-token", "--device-login=always")})
			if r.exit != 1 || r.stdout != "" || !strings.Contains(r.stderr, "the code expired before the sign-in was approved") {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s", r.exit, r.stdout, r.stderr)
			}
			if r.took > 6*time.Second {
				t.Errorf("took %s for a 3 s code", r.took)
			}
		})
	}
}

func TestIDTokenMode(t *testing.T) {
	t.Parallel()
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			p := pv.start(t, providertest.Options{})
			s := newSession(t, p, "--token=id_token", "--scope=openid", "--scope=offline_access", "--scope=email")
			r := runPlugin(t, testContext(t, time.Minute), invocation{args: s.args("get-token", "--device-login=always"), onCode: s.approve(t)})
			cred := r.credential(t)
			cl, ok := plugin.ParseClaims(cred.Status.Token)
			if !ok || cl.Subject != p.Subject() || cl.Email != p.Email() {
				t.Errorf("id_token claims %+v (ok %t)", cl, ok)
			}
			exp, _ := time.Parse(time.RFC3339, cred.Status.ExpirationTimestamp)
			if d := cl.ExpiryTime().Sub(exp); d < 59*time.Second || d > 61*time.Second {
				t.Errorf("expirationTimestamp is %s before the id_token's exp, want the 1 min margin", d)
			}
		})
	}
}

func TestNoTerminalNoLogin(t *testing.T) {
	t.Parallel()
	p := providertest.StartZitadel(t, providertest.Options{})
	s := newSession(t, p)
	r := runPlugin(t, testContext(t, time.Minute), invocation{args: s.args("get-token"),
		env: []string{`KUBERNETES_EXEC_INFO={"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`}})
	if r.exit != 1 || !strings.Contains(r.stderr, "no terminal to show a sign-in code on; sign in with: kubectl device-login login --issuer-url=") {
		t.Fatalf("exit %d, stderr:\n%s", r.exit, r.stderr)
	}
	if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
		t.Errorf("want one line on stderr, got %d:\n%s", n+1, r.stderr)
	}
	if c := s.counts(t); c.DeviceAuthorization != 0 || c.Discovery != 0 {
		t.Errorf("the provider was contacted: %+v", c)
	}
}
