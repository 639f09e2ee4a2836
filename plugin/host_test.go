package plugin_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// The hosts: client-go's real exec authenticator, and the real kubectl,
// run the plugin exactly as they do for users, against a TLS API endpoint
// that checks each bearer token with the provider.

func TestClientGoExecAuthenticator(t *testing.T) {
	t.Parallel()
	for _, apiVersion := range []string{plugin.APIVersionV1, plugin.APIVersionV1beta1} {
		t.Run(apiVersion[strings.LastIndex(apiVersion, "/")+1:], func(t *testing.T) {
			// client-go sends the plugin's stderr to the test's own
			// stderr, so the provider approves by itself here.
			p := providertest.StartZitadel(t, providertest.Options{AutoApprove: true})
			api := providertest.NewAPIServer(p.Issuer(), nil)
			defer api.Close()
			s := newSession(t, p)
			cfg := &rest.Config{
				Host:            api.URL(),
				TLSClientConfig: rest.TLSClientConfig{CAData: api.CAPEM()},
				ExecProvider: &clientcmdapi.ExecConfig{
					Command:         pluginBin,
					Args:            s.args("get-token", "--device-login=always"),
					APIVersion:      apiVersion,
					InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
				},
			}
			dc, err := discovery.NewDiscoveryClientForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			v, err := dc.ServerVersion()
			if err != nil {
				t.Fatalf("ServerVersion through the exec plugin: %v", err)
			}
			if v.GitVersion != "v1.37.2-devicelogin-test" {
				t.Errorf("version %+v", v)
			}
			_, rejected, last := api.Stats()
			if rejected != 0 || last != s.entry(t).AccessToken {
				t.Errorf("API server rejected %d requests; last token is the cached one: %t", rejected, last == s.entry(t).AccessToken)
			}
		})
	}
}

// kubectl runs the real kubectl from PATH (or another binary) with a
// kubeconfig; onCode approves a login shown on its stderr.
func kubectl(t testing.TB, ctx context.Context, bin, kubeconfig string, onCode func(string), args ...string) result {
	t.Helper()
	return runBinary(t, ctx, bin, invocation{args: append([]string{"--kubeconfig=" + kubeconfig}, args...), onCode: onCode})
}

func kubectlPath(t testing.TB) string {
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is not on PATH: it is part of every machine this project runs on (%v)", err)
	}
	return p
}

// kubectlFixture starts oidc-provider with this access-token lifetime, an
// API endpoint that trusts it, and a kubeconfig whose user runs the plugin
// with this exec apiVersion (device logins allowed, since the tests'
// stderr is no terminal).
func kubectlFixture(t *testing.T, ttl time.Duration, apiVersion string) (providertest.Provider, *providertest.APIServer, *session, string) {
	t.Helper()
	p := providertest.StartNode(t, providertest.Options{AccessTokenTTL: ttl})
	api := providertest.NewAPIServer(p.Issuer(), nil)
	t.Cleanup(api.Close)
	s := newSession(t, p)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := providertest.WriteKubeconfig(kc, providertest.Kubeconfig{
		Server: api.URL(), CAPEM: api.CAPEM(), Command: pluginBin,
		Args: s.args("get-token", "--device-login=always"), APIVersion: apiVersion,
	}); err != nil {
		t.Fatal(err)
	}
	return p, api, s, kc
}

func TestRealKubectl(t *testing.T) {
	t.Parallel()
	bin := kubectlPath(t)
	for _, apiVersion := range []string{plugin.APIVersionV1, plugin.APIVersionV1beta1} {
		t.Run(apiVersion[strings.LastIndex(apiVersion, "/")+1:], func(t *testing.T) {
			p, api, s, kc := kubectlFixture(t, 4*time.Second, apiVersion)
			ctx := testContext(t, 2*time.Minute)

			// 1. Device login through kubectl: the prompt reaches the
			// person on kubectl's stderr.
			r := kubectl(t, ctx, bin, kc, s.approve(t), "get", "--raw", "/api")
			if r.exit != 0 || !strings.Contains(r.stdout, `"APIVersions"`) {
				t.Fatalf("kubectl get --raw /api: exit %d\nstdout %s\nstderr %s", r.exit, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, "Enter the code") {
				t.Errorf("the login prompt did not reach kubectl's stderr:\n%s", r.stderr)
			}
			first := s.entry(t)
			r.noSecrets(t, first)

			// 2. Cache hit: nothing on stderr, same token.
			r = kubectl(t, ctx, bin, kc, nil, "get", "--raw", "/api")
			if r.exit != 0 || r.stderr != "" {
				t.Fatalf("cache hit: exit %d, stderr %q", r.exit, r.stderr)
			}
			if _, _, last := api.Stats(); last != first.AccessToken {
				t.Errorf("kubectl did not send the cached token")
			}

			// 3. Refresh ahead of expiry, then whoami with the new token.
			time.Sleep(2500 * time.Millisecond)
			r = kubectl(t, ctx, bin, kc, nil, "auth", "whoami")
			if r.exit != 0 || !strings.Contains(r.stdout, p.Subject()) {
				t.Fatalf("kubectl auth whoami: exit %d\nstdout %s\nstderr %s", r.exit, r.stdout, r.stderr)
			}
			second := s.entry(t)
			if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
				t.Errorf("no refresh happened")
			}
			if _, rejected, _ := api.Stats(); rejected != 0 {
				t.Errorf("the API server saw %d unauthenticated requests", rejected)
			}
			r.noSecrets(t, second)
			if c := s.counts(t); c.DeviceAuthorization != 1 || c.RefreshTokenGrant != 1 {
				t.Errorf("provider counts %+v", c)
			}
		})
	}
}
