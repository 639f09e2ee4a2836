package kubetest_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/plugin/kubetest"
)

// issuer is a minimal OpenID Connect issuer: discovery, JWKS, and RS256
// JWTs minted on demand.
type issuer struct {
	URL string
	key *rsa.PrivateKey
}

func newIssuer(t *testing.T, ca *kubetest.CA) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                                is.URL,
			"jwks_uri":                              is.URL + "/jwks",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"keys": []any{map[string]any{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1",
			"n": b64(key.N.Bytes()),
			"e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	srv := httptest.NewUnstartedServer(mux)
	if srv.TLS, err = ca.ServerTLSConfig(); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	is.URL = srv.URL
	return is
}

// mint signs a JWT with iss, iat and exp (+1h) added to claims.
func (is *issuer) mint(t *testing.T, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": is.URL, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "k1"})
	payload, _ := json.Marshal(c)
	signing := b64(header) + "." + b64(payload)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, is.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

type result struct {
	stdout, stderr string
	err            error
}

func kubectl(t *testing.T, bin, kubeconfig string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := kubetest.KubectlCmd(ctx, bin, kubeconfig, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("kubectl %s: err=%v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	return result{stdout.String(), stderr.String(), err}
}

func whoami(t *testing.T, bin, kubeconfig string) (kubetest.UserInfo, result) {
	t.Helper()
	r := kubectl(t, bin, kubeconfig, "auth", "whoami", "-o", "json")
	var review struct {
		Status struct {
			UserInfo kubetest.UserInfo `json:"userInfo"`
		} `json:"status"`
	}
	if r.err == nil {
		if err := json.Unmarshal([]byte(r.stdout), &review); err != nil {
			t.Fatalf("kubectl auth whoami: %v", err)
		}
	}
	return review.Status.UserInfo, r
}

const (
	clientID  = "kubectl-device-login"
	kindKey   = "devicelogin.test/token-kind"
	aliceMail = "alice@example.com"
	aliceName = "oidc:" + aliceMail
)

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("kubetest: starts a real kube-apiserver and etcd (make kube-servers); skipped with -short")
	}
	began := time.Now()
	bin := kubetest.Kubectl(t, "")

	ca, err := kubetest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	is := newIssuer(t, ca)
	c := kubetest.Start(t, kubetest.Config{
		CA: ca,
		Issuers: []kubetest.Issuer{{
			URL:   is.URL,
			CAPEM: ca.PEM,
			// The ID token's audience is the client ID; access tokens are
			// issued for "kubernetes".
			Audiences: []string{clientID, "kubernetes"},
			Username:  kubetest.ClaimMapping{Claim: "email", Prefix: "oidc:"},
			Groups:    kubetest.ClaimMapping{Claim: "groups", Prefix: "oidc:"},
			Extra: []kubetest.ExtraMapping{{
				Key:             kindKey,
				ValueExpression: `has(claims.token_use) ? claims.token_use : "id"`,
			}},
		}},
	})
	t.Logf("authentication config:\n%s", c.AuthenticationConfig)

	alice := map[string]any{
		"sub": "alice", "email": aliceMail, "email_verified": true,
		"groups": []string{"devs"},
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	access := is.mint(t, with(alice, "aud", "kubernetes", "token_use", "access"))
	idToken := is.mint(t, with(alice, "aud", clientID))
	wrongAud := is.mint(t, with(alice, "aud", "someone-else"))

	waitStart := time.Now()
	u := c.WaitForToken(t, access)
	t.Logf("token accepted %v after ready", time.Since(waitStart).Round(time.Millisecond))
	if u.Username != aliceName || !slices.Contains(u.Groups, "oidc:devs") || !slices.Equal(u.Extra[kindKey], []string{"access"}) {
		t.Errorf("TokenReview user = %+v", u)
	}

	t.Run("admin", func(t *testing.T) {
		r := kubectl(t, bin, c.AdminKubeconfig, "get", "namespaces", "-o", "name")
		if r.err != nil || !strings.Contains(r.stdout, "namespace/default") {
			t.Errorf("admin get namespaces: %v %s", r.err, r.stderr)
		}
	})

	t.Run("whoami", func(t *testing.T) {
		u, r := whoami(t, bin, c.Kubeconfig(t, kubetest.User{Token: access}))
		if r.err != nil {
			t.Fatalf("auth whoami: %v: %s", r.err, r.stderr)
		}
		if u.Username != aliceName || !slices.Contains(u.Groups, "oidc:devs") ||
			!slices.Contains(u.Groups, "system:authenticated") || !slices.Equal(u.Extra[kindKey], []string{"access"}) {
			t.Errorf("whoami = %+v", u)
		}
		// The ID token (aud = client ID) is accepted too: MatchAny.
		u, r = whoami(t, bin, c.Kubeconfig(t, kubetest.User{Token: idToken}))
		if r.err != nil || u.Username != aliceName || !slices.Equal(u.Extra[kindKey], []string{"id"}) {
			t.Errorf("whoami with the ID token = %+v, %v", u, r.err)
		}
	})

	t.Run("wrong audience", func(t *testing.T) {
		if _, err := c.TokenReview(context.Background(), wrongAud); err == nil {
			t.Error("TokenReview accepted a token for another audience")
		}
		_, r := whoami(t, bin, c.Kubeconfig(t, kubetest.User{Token: wrongAud}))
		if r.err == nil || !strings.Contains(r.stderr, "Unauthorized") {
			t.Errorf("whoami with the wrong audience: want Unauthorized, got %v: %s", r.err, r.stderr)
		}
	})

	t.Run("rbac", func(t *testing.T) {
		kc := c.Kubeconfig(t, kubetest.User{Token: access})
		r := kubectl(t, bin, kc, "get", "namespaces")
		if r.err == nil || !strings.Contains(r.stderr, "Forbidden") || !strings.Contains(r.stderr, aliceName) {
			t.Fatalf("get namespaces before binding: want Forbidden for %s, got %v: %s", aliceName, r.err, r.stderr)
		}
		c.BindClusterRole(t, aliceName, kubetest.Rule{Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}})
		r = kubectl(t, bin, kc, "get", "namespaces", "-o", "name")
		if r.err != nil || !strings.Contains(r.stdout, "namespace/kube-system") {
			t.Fatalf("get namespaces after binding: %v: %s", r.err, r.stderr)
		}
		// Group bindings work too, and only for what they grant.
		c.BindClusterRoleToGroup(t, "oidc:devs", kubetest.Rule{Resources: []string{"configmaps"}, Verbs: []string{"list"}})
		if r = kubectl(t, bin, kc, "get", "configmaps", "-A"); r.err != nil {
			t.Errorf("get configmaps via group binding: %v: %s", r.err, r.stderr)
		}
		if r = kubectl(t, bin, kc, "get", "secrets", "-A"); r.err == nil || !strings.Contains(r.stderr, "Forbidden") {
			t.Errorf("get secrets: want Forbidden, got %v", r.err)
		}
	})

	// The kubeconfig's exec section reaches kubectl as written: a shell
	// script stands in for the plugin and records KUBERNETES_EXEC_INFO.
	t.Run("exec plugin", func(t *testing.T) {
		dir := t.TempDir()
		plugin := filepath.Join(dir, "plugin.sh")
		script := `#!/bin/sh
printf '%s' "$KUBERNETES_EXEC_INFO" > "$1"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}\n' "$TEST_TOKEN"
`
		if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		infoFile := filepath.Join(dir, "exec-info.json")
		kc := c.Kubeconfig(t, kubetest.User{Exec: &kubetest.Exec{
			Command:            plugin,
			Args:               []string{infoFile},
			Env:                []kubetest.EnvVar{{Name: "TEST_TOKEN", Value: access}},
			InteractiveMode:    "Never",
			ProvideClusterInfo: true,
			ClusterConfig:      map[string]any{"issuer": is.URL},
		}})
		u, r := whoami(t, bin, kc)
		if r.err != nil || u.Username != aliceName {
			t.Fatalf("whoami through the exec plugin = %+v, %v: %s", u, r.err, r.stderr)
		}
		data, err := os.ReadFile(infoFile)
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			APIVersion string `json:"apiVersion"`
			Spec       struct {
				Interactive bool `json:"interactive"`
				Cluster     struct {
					Server                   string         `json:"server"`
					CertificateAuthorityData []byte         `json:"certificate-authority-data"`
					Config                   map[string]any `json:"config"`
				} `json:"cluster"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(data, &info); err != nil {
			t.Fatalf("KUBERNETES_EXEC_INFO %s: %v", data, err)
		}
		if info.APIVersion != "client.authentication.k8s.io/v1" || info.Spec.Interactive ||
			info.Spec.Cluster.Server != c.Server || !bytes.Equal(info.Spec.Cluster.CertificateAuthorityData, c.CAPEM) ||
			info.Spec.Cluster.Config["issuer"] != is.URL {
			t.Errorf("KUBERNETES_EXEC_INFO = %s", data)
		}
	})

	t.Logf("timings: cluster ready in %v; whole test %v", c.StartupTime.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// The authentication configuration follows kube-apiserver's rules without a
// server: no binaries needed.
func TestAuthenticationConfig(t *testing.T) {
	data, err := kubetest.AuthenticationConfig([]kubetest.Issuer{
		{URL: "https://a.example", Audiences: []string{"x"}},
		{URL: "https://b.example", Audiences: []string{"x", "y"}, Username: kubetest.ClaimMapping{Expression: "claims.sub"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		APIVersion string `json:"apiVersion"`
		JWT        []struct {
			Issuer struct {
				AudienceMatchPolicy string `json:"audienceMatchPolicy"`
			} `json:"issuer"`
			ClaimMappings struct {
				Username map[string]any `json:"username"`
			} `json:"claimMappings"`
		} `json:"jwt"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.APIVersion != "apiserver.config.k8s.io/v1" || len(doc.JWT) != 2 ||
		doc.JWT[0].Issuer.AudienceMatchPolicy != "" || doc.JWT[1].Issuer.AudienceMatchPolicy != "MatchAny" {
		t.Errorf("config:\n%s", data)
	}
	// username.claim always carries a prefix, possibly empty.
	if p, ok := doc.JWT[0].ClaimMappings.Username["prefix"]; !ok || p != "" || doc.JWT[0].ClaimMappings.Username["claim"] != "sub" {
		t.Errorf("username mapping = %v", doc.JWT[0].ClaimMappings.Username)
	}
	if _, err := kubetest.AuthenticationConfig([]kubetest.Issuer{
		{URL: "https://a.example", Audiences: []string{"x"}},
		{URL: "https://a.example", Audiences: []string{"y"}},
	}); err == nil {
		t.Error("a repeated issuer URL was accepted")
	}
}
