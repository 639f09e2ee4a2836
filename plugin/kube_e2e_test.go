package plugin_test

// End to end against a real Kubernetes API server: kube-apiserver v1.37.2
// and etcd from plugin/kubetest (`make kube-servers`), npm's oidc-provider
// served over HTTPS with the cluster's CA, and the real kubectl whose
// kubeconfig user is the plugin binary. Nothing here is a stand-in: the
// cluster verifies our tokens with its structured AuthenticationConfiguration
// and authorizes with RBAC.

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/kubetest"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

const (
	// kubeAPIAudience is the audience the cluster accepts access tokens
	// for (oidc-provider takes resource indicators, which must be absolute
	// URIs; Hydra takes any string).
	kubeAPIAudience = "https://kubernetes.test"
	// kubeOtherAudience is an audience the provider issues tokens for but
	// the cluster does not accept.
	kubeOtherAudience = "https://other-api.test"
	// kubeKindKey is the extra user attribute that tells which kind of
	// token arrived; RFC 9068 access tokens carry client_id, ID tokens do
	// not (checked on the real tokens of oidc-provider and Hydra).
	kubeKindKey  = "example.com/token-kind"
	kubeKindExpr = `has(claims.client_id) ? "access_token" : "id_token"`
	// kubePrefix is the username (and groups) prefix of the main issuer.
	kubePrefix = "oidc:"
)

// kubeIDTokenFlags select id_token mode with the e-mail in the ID token.
var kubeIDTokenFlags = []string{"--token=id_token", "--scope=openid", "--scope=offline_access", "--scope=email"}

// kubeVersions are the kubectl binaries scenario 1 runs with: kubectl.1.27
// … kubectl.1.33 beside kubectl's target.
var kubeVersions = []string{"1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"}

// kubeEnv is one cluster and the providers around it.
type kubeEnv struct {
	c *kubetest.Cluster
	// caFile is the CA that signed every provider's serving certificate
	// (and the cluster's), for the plugin's --certificate-authority.
	caFile string
	// main: access tokens for kubeAPIAudience, 1 h lifetimes; username
	// prefix "oidc:".
	main providertest.Provider
	// short: like main with 10 s lifetimes; prefix "short:".
	short providertest.Provider
	// otherAud: issues access tokens only for kubeOtherAudience; its issuer
	// is configured in the cluster like main's; prefix "other-aud:".
	otherAud providertest.Provider
	// stranger: an issuer the cluster does not know.
	stranger providertest.Provider
}

// kubeShortTTL is the lifetime of the short provider's tokens.
const kubeShortTTL = 10 * time.Second

// TestKubeAPIServer runs the scenarios of issue 8 against one cluster:
// id_token mode with every kubectl 1.27–1.33, JWT access-token mode, expiry
// and refresh, and tokens the cluster refuses.
func TestKubeAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver, etcd and four OpenID providers; skipped with -short")
	}
	// Fail (never skip) without the servers, saying how to build them.
	if _, err := kubetest.BinDir(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	k := startKubeEnv(t)
	t.Logf("timing: providers, cluster and issuer warm-up ready in %v", time.Since(began).Round(time.Millisecond))

	t.Run("expiry", func(t *testing.T) {
		t.Parallel()
		k.expiry(t)
	})
	t.Run("client_credentials", func(t *testing.T) {
		t.Parallel()
		k.clientCredentials(t)
	})
	t.Run("rbac", func(t *testing.T) {
		t.Parallel()
		// One user (oidc:alice) for all of these: RBAC bindings are made
		// and removed in turn.
		t.Run("id_token", func(t *testing.T) {
			for _, v := range kubeVersions {
				t.Run("kubectl_"+v, func(t *testing.T) {
					s := newSession(t, k.main, k.flags(kubeIDTokenFlags...)...)
					bin := kubetest.Kubectl(t, v)
					legacy := v == "1.27"
					k.signInAndAuthorize(t, bin, legacy, s, "id_token")
					if legacy {
						r := kubectlIn(t, testContext(t, time.Minute), bin, k.kubeconfig(t, s), nil, "auth", "whoami")
						t.Logf("kubectl %s auth whoami: exit %d: %s", v, r.exit, strings.TrimSpace(r.stderr))
					}
				})
			}
		})
		t.Run("access_token", func(t *testing.T) {
			s := newSession(t, k.main, k.flags("--extra-param=audience="+kubeAPIAudience)...)
			bin := kubetest.Kubectl(t, "")
			k.signInAndAuthorize(t, bin, false, s, "access_token")
			r := kubectlIn(t, testContext(t, time.Minute), bin, k.c.AdminKubeconfig, nil, "version")
			t.Logf("kubectl version (the default kubectl, used by the other scenarios):\n%s%s", r.stdout, r.stderr)
			e := s.entry(t)
			header, claims := decodeJWT(t, e.AccessToken)
			if header["typ"] != "at+jwt" || claims["aud"] != kubeAPIAudience || claims["client_id"] != k.main.ClientID() {
				t.Errorf("the access token is not an RFC 9068 JWT for %s: header %v, claims %v", kubeAPIAudience, header, claims)
			}
		})
		t.Run("refused", func(t *testing.T) {
			// A JWT access token from a configured issuer, for an
			// audience the cluster does not accept.
			t.Run("wrong_audience", func(t *testing.T) {
				s := newSession(t, k.otherAud, k.flags("--extra-param=audience="+kubeOtherAudience)...)
				k.refused(t, s)
				if _, claims := decodeJWT(t, s.entry(t).AccessToken); claims["aud"] != kubeOtherAudience || claims["iss"] != k.otherAud.Issuer() {
					t.Errorf("premise: claims %v", claims)
				}
			})
			// A JWT access token for the right audience from an issuer
			// the cluster does not know.
			t.Run("other_issuer", func(t *testing.T) {
				s := newSession(t, k.stranger, k.flags("--extra-param=audience="+kubeAPIAudience)...)
				k.refused(t, s)
				if _, claims := decodeJWT(t, s.entry(t).AccessToken); claims["aud"] != kubeAPIAudience || claims["iss"] != k.stranger.Issuer() {
					t.Errorf("premise: claims %v", claims)
				}
			})
			// Without an audience request oidc-provider issues opaque
			// access tokens, as Hydra does by default.
			t.Run("opaque_access_token", func(t *testing.T) {
				s := newSession(t, k.main, k.flags()...)
				k.refused(t, s)
				if strings.Count(s.entry(t).AccessToken, ".") == 2 {
					t.Errorf("premise: the access token is a JWT")
				}
			})
		})
	})
}

// startKubeEnv starts the four providers over HTTPS, then the cluster with
// three of them as issuers, and waits until the cluster accepts a token
// from each (kube-apiserver fetches discovery after /readyz is green).
func startKubeEnv(t *testing.T) *kubeEnv {
	t.Helper()
	ca, err := kubetest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := &kubeEnv{caFile: filepath.Join(dir, "ca.crt")}
	if err := os.WriteFile(k.caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(o providertest.Options) providertest.Provider {
		var err error
		if o.CertFile, o.KeyFile, err = ca.WriteServingCert(dir); err != nil {
			t.Fatal(err)
		}
		return providertest.StartNode(t, o)
	}
	began := time.Now()
	k.main = start(providertest.Options{Audience: kubeAPIAudience, ClientSecret: grantsSecret})
	k.short = start(providertest.Options{Audience: kubeAPIAudience, AccessTokenTTL: kubeShortTTL, IDTokenTTL: kubeShortTTL})
	k.otherAud = start(providertest.Options{Audience: kubeOtherAudience})
	k.stranger = start(providertest.Options{Audience: kubeAPIAudience})
	t.Logf("timing: four providers started in %v", time.Since(began).Round(time.Millisecond))

	configured := []struct {
		p      providertest.Provider
		prefix string
	}{{k.main, kubePrefix}, {k.short, "short:"}, {k.otherAud, "other-aud:"}}
	var issuers []kubetest.Issuer
	for _, c := range configured {
		issuers = append(issuers, kubeIssuer(c.p, ca.PEM, c.prefix))
	}
	k.c = kubetest.Start(t, kubetest.Config{CA: ca, Issuers: issuers})
	t.Logf("AuthenticationConfiguration in use:\n%s", k.c.AuthenticationConfig)

	began = time.Now()
	for _, c := range configured {
		s := newSession(t, c.p, k.flags(kubeIDTokenFlags...)...)
		r := runPlugin(t, testContext(t, time.Minute), invocation{args: s.args("get-token", "--output=token"), onCode: s.approve(t)})
		if r.exit != 0 {
			t.Fatalf("warm-up sign-in at %s: exit %d\n%s", c.p.Issuer(), r.exit, r.stderr)
		}
		u := k.c.WaitForToken(t, strings.TrimSpace(r.stdout))
		if u.Username != c.prefix+c.p.Subject() || !slices.Equal(u.Extra[kubeKindKey], []string{"id_token"}) {
			t.Errorf("TokenReview of an ID token from %s: %+v, want user %s%s and %s=id_token", c.p.Issuer(), u, c.prefix, c.p.Subject(), kubeKindKey)
		}
	}
	t.Logf("timing: a sign-in and an accepted TokenReview per issuer took %v after the cluster was ready", time.Since(began).Round(time.Millisecond))
	return k
}

// kubeIssuer is the jwt authenticator of one provider: both token kinds
// (ID token: aud is the client ID; access token: aud is kubeAPIAudience),
// username from sub (access tokens carry no e-mail), groups from a groups
// claim when present, and the token kind as an extra attribute.
func kubeIssuer(p providertest.Provider, caPEM []byte, prefix string) kubetest.Issuer {
	return kubetest.Issuer{
		URL:       p.Issuer(),
		CAPEM:     caPEM,
		Audiences: []string{p.ClientID(), kubeAPIAudience},
		Username:  kubetest.ClaimMapping{Claim: "sub", Prefix: prefix},
		Groups:    kubetest.ClaimMapping{Claim: "groups", Prefix: prefix},
		Extra:     []kubetest.ExtraMapping{{Key: kubeKindKey, ValueExpression: kubeKindExpr}},
	}
}

// flags are the get-token flags every kubeconfig here uses, plus more:
// trust the test CA, and sign in even though kubectl's stderr is not a
// terminal in a test.
func (k *kubeEnv) flags(more ...string) []string {
	return append([]string{"--certificate-authority=" + k.caFile, "--device-login=always"}, more...)
}

// kubeconfig writes a kubeconfig for the cluster whose user runs the
// plugin with the session's flags plus more.
func (k *kubeEnv) kubeconfig(t *testing.T, s *session, more ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	err := k.c.WriteKubeconfig(path, kubetest.User{Exec: &kubetest.Exec{
		Command:         pluginBin,
		Args:            s.args("get-token", more...),
		InteractiveMode: "Never",
	}})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// kubectlIn runs kubectl with a discovery cache beside the kubeconfig, so
// that nothing lands in the developer's ~/.kube.
func kubectlIn(t *testing.T, ctx context.Context, bin, kc string, onCode func(string), args ...string) result {
	t.Helper()
	return kubectl(t, ctx, bin, kc, onCode, append([]string{"--cache-dir=" + filepath.Join(filepath.Dir(kc), "kubectl-cache")}, args...)...)
}

// kubeWhoami asks the cluster who kubectl is: `kubectl auth whoami`, or
// for kubectl 1.27 (whose whoami wants authentication.k8s.io v1alpha1 or
// v1beta1, which a 1.37 server no longer serves) a v1 SelfSubjectReview
// created with `kubectl create --raw`.
func kubeWhoami(t *testing.T, ctx context.Context, bin, kc string, legacy bool, onCode func(string)) (kubetest.UserInfo, result) {
	t.Helper()
	args := []string{"auth", "whoami", "-o", "json"}
	if legacy {
		body := filepath.Join(filepath.Dir(kc), "selfsubjectreview.json")
		if err := os.WriteFile(body, []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		args = []string{"create", "--raw", "/apis/authentication.k8s.io/v1/selfsubjectreviews", "-f", body}
	}
	r := kubectlIn(t, ctx, bin, kc, onCode, args...)
	var review struct {
		Status struct {
			UserInfo kubetest.UserInfo `json:"userInfo"`
		} `json:"status"`
	}
	if r.exit == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &review); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, r.stdout)
		}
	}
	return review.Status.UserInfo, r
}

// signInAndAuthorize is scenarios 1 and 2 with one kubectl: the first
// command signs in (the prompt on kubectl's stderr), whoami shows the
// mapped user and the token kind, `get namespaces` is forbidden until a
// ClusterRole of our own is bound to the user, then allowed; the binding is
// removed again at the end.
func (k *kubeEnv) signInAndAuthorize(t *testing.T, bin string, legacy bool, s *session, kind string) {
	began := time.Now()
	ctx := testContext(t, 3*time.Minute)
	kc := k.kubeconfig(t, s)
	wantUser := kubePrefix + k.main.Subject()
	before := s.counts(t)

	u, r := kubeWhoami(t, ctx, bin, kc, legacy, s.approve(t))
	if r.exit != 0 {
		t.Fatalf("whoami with a device login: exit %d\n%s", r.exit, r.stderr)
	}
	for _, want := range []string{"Enter the code", "signed in as"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("kubectl's stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if u.Username != wantUser || !slices.Contains(u.Groups, "system:authenticated") ||
		!slices.Equal(u.Extra[kubeKindKey], []string{kind}) {
		t.Errorf("whoami = %+v; want user %s in system:authenticated with %s=%s", u, wantUser, kubeKindKey, kind)
	}
	stderrs := []string{r.stderr}

	if !legacy {
		// What a person sees.
		r = kubectlIn(t, ctx, bin, kc, nil, "auth", "whoami")
		if r.exit != 0 || !strings.Contains(r.stdout, wantUser) || !strings.Contains(r.stdout, kind) {
			t.Errorf("kubectl auth whoami: exit %d\nstdout %s\nstderr %s", r.exit, r.stdout, r.stderr)
		}
		t.Logf("kubectl auth whoami:\n%s", r.stdout)
		stderrs = append(stderrs, r.stderr)
	}

	// Authenticated is not authorized: no binding, no namespaces.
	r = kubectlIn(t, ctx, bin, kc, nil, "get", "namespaces", "-o", "name")
	if r.exit == 0 || !strings.Contains(r.stderr, `User "`+wantUser+`" cannot list resource "namespaces"`) {
		t.Errorf("get namespaces without a binding: want forbidden for %s, got exit %d\nstdout %s\nstderr %s", wantUser, r.exit, r.stdout, r.stderr)
	}
	t.Logf("kubectl get namespaces without a binding: %s", strings.TrimSpace(r.stderr))
	stderrs = append(stderrs, r.stderr)

	role := k.c.BindClusterRole(t, wantUser, kubetest.Rule{Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}})
	r = kubectlIn(t, ctx, bin, kc, nil, "get", "namespaces", "-o", "name")
	if r.exit != 0 || !strings.Contains(r.stdout, "namespace/kube-system") {
		t.Errorf("get namespaces with a binding: exit %d\nstdout %s\nstderr %s", r.exit, r.stdout, r.stderr)
	}
	stderrs = append(stderrs, r.stderr)
	kubeUnbind(t, k.c, role, wantUser)

	after := s.counts(t)
	if d, g, rf := after.DeviceAuthorization-before.DeviceAuthorization, after.DeviceCodeGrant-before.DeviceCodeGrant,
		after.RefreshTokenGrant-before.RefreshTokenGrant; d != 1 || g < 1 || rf != 0 {
		t.Errorf("the provider saw %d device authorizations, %d device_code grants, %d refreshes; want 1, at least 1, 0", d, g, rf)
	}
	e := s.entry(t)
	for _, stderr := range stderrs {
		result{stderr: stderr}.noSecrets(t, e)
	}
	t.Logf("timing: %s took %v", t.Name(), time.Since(began).Round(time.Millisecond))
}

// kubeUnbind deletes what BindClusterRole made and waits until RBAC no
// longer lets user list namespaces.
func kubeUnbind(t *testing.T, c *kubetest.Cluster, role, user string) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	for _, kind := range []string{"clusterrolebindings", "clusterroles"} {
		code, body, err := c.Do(ctx, http.MethodDelete, "/apis/rbac.authorization.k8s.io/v1/"+kind+"/"+role, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("deleting %s %s: %d %v %s", kind, role, code, err, body)
		}
	}
	sar := map[string]any{
		"apiVersion": "authorization.k8s.io/v1",
		"kind":       "SubjectAccessReview",
		"spec": map[string]any{
			"user":               user,
			"resourceAttributes": map[string]any{"verb": "list", "resource": "namespaces"},
		},
	}
	for {
		code, body, err := c.Do(ctx, http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar)
		var out struct {
			Status struct {
				Allowed bool `json:"allowed"`
			} `json:"status"`
		}
		if err == nil && code == http.StatusCreated && json.Unmarshal(body, &out) == nil && !out.Status.Allowed {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s may still list namespaces 30s after its binding was deleted (%d %v)", user, code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expiry is scenario 3: with 10 s tokens, kubectl commands over more than
// two lifetimes, alternating an access-token and an ID-token kubeconfig,
// never meet a 401, and each session is refreshed once per
// (lifetime − margin), the margin being min(1 min, lifetime/2), not once per
// command.
func (k *kubeEnv) expiry(t *testing.T) {
	began := time.Now()
	ctx := testContext(t, 3*time.Minute)
	bin := kubetest.Kubectl(t, "")
	type loop struct {
		kind    string
		s       *session
		kc      string
		first   *cache.Entry
		last    time.Time // start of the latest command
		maxGap  time.Duration
		calls   int
		lastEnd time.Time
	}
	loops := []*loop{
		{kind: "access_token", s: newSession(t, k.short, k.flags("--extra-param=audience="+kubeAPIAudience)...)},
		{kind: "id_token", s: newSession(t, k.short, k.flags(kubeIDTokenFlags...)...)},
	}
	wantUser := "short:" + k.short.Subject()
	for _, l := range loops {
		l.kc = k.kubeconfig(t, l.s)
		u, r := kubeWhoami(t, ctx, bin, l.kc, false, l.s.approve(t))
		if r.exit != 0 || u.Username != wantUser || !slices.Equal(u.Extra[kubeKindKey], []string{l.kind}) {
			t.Fatalf("sign-in (%s): exit %d, user %+v\n%s", l.kind, r.exit, u, r.stderr)
		}
		l.first = l.s.entry(t)
		l.last = l.first.IssuedAt
	}
	startCounts, err := k.short.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// More than two lifetimes after the later sign-in, and long enough
	// for clearly more commands than refreshes even on a slow machine.
	until := loops[len(loops)-1].first.IssuedAt.Add(kubeShortTTL*5/2 + time.Second)
	enough := func() bool {
		if time.Now().Before(until) {
			return false
		}
		for _, l := range loops {
			if float64(l.calls) < time.Since(l.first.IssuedAt).Seconds()/kubeRefreshPeriod(l.first, l.kind).Seconds()+3 {
				return false
			}
		}
		return true
	}
	var failed int
	for !enough() {
		if time.Now().After(until.Add(time.Minute)) {
			t.Fatalf("kubectl is too slow on this machine to tell one refresh per period from one per command")
		}
		for _, l := range loops {
			now := time.Now()
			l.maxGap = max(l.maxGap, now.Sub(l.last))
			l.last = now
			u, r := kubeWhoami(t, ctx, bin, l.kc, false, nil)
			l.lastEnd = time.Now()
			l.calls++
			if r.exit != 0 {
				failed++
				t.Errorf("%s: kubectl auth whoami failed %v after sign-in: exit %d\n%s", l.kind, now.Sub(l.first.IssuedAt).Round(time.Millisecond), r.exit, r.stderr)
				continue
			}
			if u.Username != wantUser || !slices.Equal(u.Extra[kubeKindKey], []string{l.kind}) {
				t.Errorf("%s: whoami = %+v", l.kind, u)
			}
			if r.stderr != "" {
				t.Errorf("%s: a silent refresh or cache hit wrote on stderr:\n%s", l.kind, r.stderr)
			}
		}
		if failed > 3 {
			t.FailNow()
		}
	}
	endCounts, err := k.short.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Each refresh happens at the first command after (lifetime − margin)
	// from the previous one: at most span/period (+1 for rounding), at
	// least span/(period + the longest gap between commands) (−1).
	var lo, hi, calls int
	for _, l := range loops {
		last := l.s.entry(t)
		if last.RefreshToken == l.first.RefreshToken {
			t.Errorf("%s: the session was never refreshed", l.kind)
		}
		p1, p2 := kubeRefreshPeriod(l.first, l.kind), kubeRefreshPeriod(last, l.kind)
		pMin, pMax := min(p1, p2), max(p1, p2)
		lo1 := int(math.Floor(float64(l.last.Sub(l.first.IssuedAt))/float64(pMax+l.maxGap))) - 1
		hi1 := int(math.Ceil(float64(l.lastEnd.Sub(l.first.IssuedAt))/float64(pMin))) + 1
		t.Logf("%s: %d kubectl commands over %v, refresh period %v–%v, longest gap %v: expect %d–%d refreshes",
			l.kind, l.calls, l.lastEnd.Sub(l.first.IssuedAt).Round(time.Millisecond), pMin.Round(time.Millisecond),
			pMax.Round(time.Millisecond), l.maxGap.Round(time.Millisecond), max(lo1, 1), hi1)
		if l.calls <= hi1 {
			t.Errorf("%s: only %d kubectl commands ran; too few to tell one refresh per period from one per command", l.kind, l.calls)
		}
		lo += max(lo1, 1)
		hi += hi1
		calls += l.calls
	}
	refreshes := endCounts.RefreshTokenGrant - startCounts.RefreshTokenGrant
	t.Logf("the provider counted %d refreshes and %d device authorizations for %d kubectl commands", refreshes,
		endCounts.DeviceAuthorization-startCounts.DeviceAuthorization, calls)
	if refreshes < lo || refreshes > hi {
		t.Errorf("the provider counted %d refreshes for %d kubectl commands; want %d–%d (one per refresh period per session)", refreshes, calls, lo, hi)
	}
	if d := endCounts.DeviceAuthorization - startCounts.DeviceAuthorization; d != 0 {
		t.Errorf("%d device logins started during the loop; want none", d)
	}
	t.Logf("timing: expiry scenario took %v", time.Since(began).Round(time.Millisecond))
}

// clientCredentials: a CI kubeconfig, whose user runs the plugin with
// --grant-type=client-credentials and the secret in the exec env, gets a
// JWT access token the cluster takes as the client's own user, with no
// device login.
func (k *kubeEnv) clientCredentials(t *testing.T) {
	s := clientSession(t, k.main, providertest.CIClientID, k.flags("--grant-type=client-credentials", "--extra-param=audience="+kubeAPIAudience)...)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	err := k.c.WriteKubeconfig(kc, kubetest.User{Exec: &kubetest.Exec{
		Command:         pluginBin,
		Args:            s.args("get-token"),
		Env:             []kubetest.EnvVar{{Name: "DEVICE_LOGIN_CLIENT_SECRET", Value: grantsSecret}},
		InteractiveMode: "Never",
	}})
	if err != nil {
		t.Fatal(err)
	}
	u, r := kubeWhoami(t, testContext(t, time.Minute), kubetest.Kubectl(t, ""), kc, false, nil)
	if r.exit != 0 || u.Username != kubePrefix+providertest.CIClientID || !slices.Equal(u.Extra[kubeKindKey], []string{"access_token"}) {
		t.Errorf("kubectl auth whoami with the CI client: exit %d, user %+v, want %s%s with an access token\n%s", r.exit, u, kubePrefix, providertest.CIClientID, r.stderr)
	}
	if strings.Contains(r.stderr, "Enter the code") || strings.Contains(r.stderr, grantsSecret) {
		t.Errorf("kubectl's stderr shows a sign-in prompt or the secret:\n%s", r.stderr)
	}
	if _, claims := decodeJWT(t, s.entry(t).AccessToken); claims["aud"] != kubeAPIAudience || claims["sub"] != providertest.CIClientID {
		t.Errorf("the cached token's claims %v, want aud %s and sub %s", claims, kubeAPIAudience, providertest.CIClientID)
	}
}

// kubeRefreshPeriod is how long after IssuedAt the plugin refreshes the
// entry's token of this kind: its lifetime minus the default margin,
// min(1 min, lifetime/2).
func kubeRefreshPeriod(e *cache.Entry, kind string) time.Duration {
	exp := e.Expiry
	if kind == "id_token" {
		exp = e.IDTokenExpiry
	}
	lifetime := exp.Sub(e.IssuedAt)
	return lifetime - min(time.Minute, lifetime/2)
}

// refused is scenario 4: the plugin signs in fine, but the cluster refuses
// the token. kubectl runs the plugin again after the 401, which serves the
// same cached token (no new sign-in, no refresh), and the person sees
// kubectl's "Unauthorized".
func (k *kubeEnv) refused(t *testing.T, s *session) {
	began := time.Now()
	ctx := testContext(t, 2*time.Minute)
	bin := kubetest.Kubectl(t, "")
	kc := k.kubeconfig(t, s)

	_, first := kubeWhoami(t, ctx, bin, kc, false, s.approve(t))
	t.Logf("what a person sees on the first command (device login, then the 401):\n%s", first.stderr)
	if first.exit == 0 || !strings.Contains(first.stderr, "signed in as") ||
		!strings.Contains(first.stderr, "error: You must be logged in to the server (Unauthorized)") {
		t.Errorf("first whoami: want a sign-in and then Unauthorized, got exit %d\nstdout %s\nstderr %s", first.exit, first.stdout, first.stderr)
	}
	e := s.entry(t)
	signedIn := s.counts(t)

	_, again := kubeWhoami(t, ctx, bin, kc, false, nil)
	t.Logf("what a person sees on the next command (cached token, 401):\n%s", again.stderr)
	if again.exit == 0 || !strings.Contains(again.stderr, "Unauthorized") || strings.Contains(again.stderr, "Enter the code") {
		t.Errorf("second whoami: want Unauthorized without a new sign-in, got exit %d\nstderr %s", again.exit, again.stderr)
	}

	// The same with --verbose: each plugin run says where its token came
	// from, so the 401 re-runs show up.
	verbose := kubectlIn(t, ctx, bin, k.kubeconfig(t, s, "--verbose"), nil, "auth", "whoami")
	runs := strings.Count(verbose.stderr, "using the cached token")
	t.Logf("with --verbose (%d plugin runs for one kubectl command):\n%s", runs, verbose.stderr)
	if verbose.exit == 0 || runs < 2 {
		t.Errorf("want kubectl to run the plugin again after the 401 (≥ 2 runs), got %d runs, exit %d", runs, verbose.exit)
	}

	after := s.counts(t)
	if after.DeviceAuthorization != signedIn.DeviceAuthorization || after.RefreshTokenGrant != signedIn.RefreshTokenGrant {
		t.Errorf("the 401 re-runs reached the provider: %+v, then %+v", signedIn, after)
	}
	if now := s.entry(t); now.AccessToken != e.AccessToken || now.RefreshToken != e.RefreshToken {
		t.Errorf("the 401 re-runs changed the cached session")
	}
	for _, r := range []result{first, again, verbose} {
		r.noSecrets(t, e)
	}
	// The cluster itself refuses the token (not the plugin failing).
	if u, err := k.c.TokenReview(ctx, e.AccessToken); err == nil {
		t.Errorf("TokenReview accepted the token as %+v", u)
	} else {
		t.Logf("TokenReview: %v", err)
	}
	// What the cluster's operator sees.
	if log, err := os.ReadFile(k.c.APIServerLog); err == nil {
		var lines []string
		for line := range strings.Lines(string(log)) {
			if strings.Contains(line, "authenticat") {
				lines = append(lines, line)
			}
		}
		t.Logf("kube-apiserver's log, lines about authentication so far (%d):\n%s", len(lines), strings.Join(lines[max(0, len(lines)-3):], ""))
	}
	t.Logf("timing: %s took %v", t.Name(), time.Since(began).Round(time.Millisecond))
}
