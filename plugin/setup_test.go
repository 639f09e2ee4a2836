package plugin_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
	"github.com/devicelogin/kubectl-device-login/plugin/setup"
)

// viewUser reads a user entry back through kubectl, as kubectl sees it.
func viewUser(t *testing.T, kubeconfig, user string) map[string]any {
	t.Helper()
	out, err := exec.Command(kubectlPath(t), "--kubeconfig="+kubeconfig, "config", "view", "--raw", "-o", "json").Output()
	if err != nil {
		t.Fatalf("kubectl config view: %v", err)
	}
	var cfg struct {
		Users []struct {
			Name string
			User struct{ Exec map[string]any }
		}
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, u := range cfg.Users {
		if u.Name == user {
			return u.User.Exec
		}
	}
	t.Fatalf("no user %q in %s", user, out)
	return nil
}

// cluster adds a cluster pointing at api and a context using user, with
// kubectl itself.
func addCluster(t *testing.T, kubeconfig string, api *providertest.APIServer, user string, extension map[string]any) {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, api.CAPEM(), 0o600)
	k := kubectlPath(t)
	for _, args := range [][]string{
		{"config", "set-cluster", "test", "--server=" + api.URL(), "--certificate-authority=" + ca, "--embed-certs"},
		{"config", "set-context", "test", "--cluster=test", "--user=" + user},
		{"config", "use-context", "test"},
	} {
		if out, err := exec.Command(k, append([]string{"--kubeconfig=" + kubeconfig}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}
	if extension != nil {
		// kubectl cannot set cluster extensions; add it as a person would
		// with an editor, through client-go's own kubeconfig code.
		cfg, err := clientcmd.LoadFromFile(kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(extension)
		cfg.Clusters["test"].Extensions = map[string]runtime.Object{"client.authentication.k8s.io/exec": &runtime.Unknown{Raw: raw, ContentType: "application/json"}}
		if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSetupWritesAWorkingUser(t *testing.T) {
	p := providertest.StartNode(t, providertest.Options{})
	api := providertest.NewAPIServer(p.Issuer(), nil)
	defer api.Close()
	// A comma in an argument: kubectl reads --exec-arg as CSV.
	s := newSession(t, p, "--extra-param=x-note=a,b")
	kc := filepath.Join(t.TempDir(), "config")
	ctx := testContext(t, 2*time.Minute)

	// --dry-run: prints the plan, changes nothing.
	r := runPlugin(t, ctx, invocation{args: append([]string{"setup", "--dry-run", "--kubeconfig=" + kc, "--command=" + pluginBin}, s.flags...)})
	if r.exit != 0 || !strings.Contains(r.stdout, "config set-credentials device-login") || !strings.Contains(r.stdout, "--exec-interactive-mode=Never") {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.exit, r.stdout, r.stderr)
	}
	if _, err := os.Stat(kc); !os.IsNotExist(err) {
		t.Fatalf("--dry-run wrote the kubeconfig")
	}

	r = runPlugin(t, ctx, invocation{args: append([]string{"setup", "--kubeconfig=" + kc, "--command=" + pluginBin, "--user=olympus", "--context=prod"}, s.flags...)})
	if r.exit != 0 || !strings.Contains(r.stderr, `Wrote user "olympus"`) || strings.Contains(r.stderr, "Warning") {
		t.Fatalf("setup: exit %d\n%s", r.exit, r.stderr)
	}
	exec := viewUser(t, kc, "olympus")
	if exec["apiVersion"] != plugin.APIVersionV1 || exec["interactiveMode"] != "Never" || exec["command"] != pluginBin || exec["installHint"] != setup.InstallHint {
		t.Errorf("user entry: %v", exec)
	}
	wantArgs := append([]any{"get-token"}, toAny(s.flags)...)
	if got, _ := json.Marshal(exec["args"]); string(got) != string(mustJSON(wantArgs)) {
		t.Errorf("args %s, want %s", got, mustJSON(wantArgs))
	}
	// Setting up again replaces the entry and keeps exactly one hint.
	r = runPlugin(t, ctx, invocation{args: append([]string{"setup", "--kubeconfig=" + kc, "--command=" + pluginBin, "--user=olympus", "--token=id_token"}, s.flags...)})
	data, _ := os.ReadFile(kc)
	if r.exit != 0 || strings.Count(string(data), "installHint") != 1 || !strings.Contains(string(data), "--token=id_token") {
		t.Fatalf("second setup: exit %d\n%s\n%s", r.exit, r.stderr, data)
	}
	r = runPlugin(t, ctx, invocation{args: append([]string{"setup", "--kubeconfig=" + kc, "--command=" + pluginBin, "--user=olympus"}, s.flags...)})
	if r.exit != 0 {
		t.Fatal(r.stderr)
	}

	// The entry works: kubectl signs in with it.
	addCluster(t, kc, api, "olympus", nil)
	r = kubectl(t, ctx, kubectlPath(t), kc, s.approve(t), "--context=prod", "get", "--raw", "/api")
	if r.exit == 0 {
		t.Errorf("context prod has no cluster, yet kubectl succeeded")
	}
	r = kubectl(t, ctx, kubectlPath(t), kc, s.approve(t), "get", "--raw", "/api")
	// interactiveMode Never and stderr a pipe: no device login may start.
	if r.exit == 0 || !strings.Contains(r.stderr, "no terminal to show a sign-in code on") {
		t.Fatalf("kubectl without a terminal: exit %d\n%s", r.exit, r.stderr)
	}
	if lr := runPlugin(t, ctx, invocation{args: s.args("login"), onCode: s.approve(t)}); lr.exit != 0 {
		t.Fatal(lr.stderr)
	}
	r = kubectl(t, ctx, kubectlPath(t), kc, nil, "get", "--raw", "/api")
	if r.exit != 0 || !strings.Contains(r.stdout, "APIVersions") {
		t.Fatalf("kubectl after login: exit %d\n%s", r.exit, r.stderr)
	}
}

func TestSetupFromKubelogin(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "config")
	k := kubectlPath(t)
	for _, args := range [][]string{
		{"config", "set-credentials", "oidc", "--exec-api-version=client.authentication.k8s.io/v1beta1", "--exec-command=kubectl",
			"--exec-arg=oidc-login", "--exec-arg=get-token", "--exec-arg=--oidc-issuer-url=https://auth.example.com",
			"--exec-arg=--oidc-client-id=kubernetes", `--exec-arg="--oidc-extra-scope=email,groups"`, "--exec-arg=--listen-address",
			"--exec-arg=127.0.0.1:8000", "--exec-arg=--certificate-authority=/etc/ca.pem", "--exec-arg=--grant-type=authcode", "--exec-arg=--token-cache-storage=keyring",
			"--exec-env=HTTPS_PROXY=http://proxy:3128"},
		{"config", "set-credentials", "static", "--token=abc"},
	} {
		if out, err := exec.Command(k, append([]string{"--kubeconfig=" + kc}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	r := runPlugin(t, testContext(t, time.Minute), invocation{args: []string{"setup", "--from-kubelogin", "--kubeconfig=" + kc}})
	if r.exit != 0 {
		t.Fatalf("exit %d\n%s", r.exit, r.stderr)
	}
	for _, want := range []string{`User "oidc"`, "not carried over: --listen-address", "not carried over: --grant-type", "Converted 1 user(s)"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stderr)
		}
	}
	exec := viewUser(t, kc, "oidc")
	got, _ := json.Marshal(exec["args"])
	want := `["get-token","--scope=openid","--scope=offline_access","--scope=email","--scope=groups","--token=id_token","--issuer-url=https://auth.example.com","--client-id=kubernetes","--certificate-authority=/etc/ca.pem","--token-cache=keyring"]`
	if string(got) != want || exec["command"] != "kubectl-device_login" || exec["interactiveMode"] != "Never" || exec["installHint"] != setup.InstallHint {
		t.Errorf("converted entry: args %s, exec %v", got, exec)
	}
	if env, _ := json.Marshal(exec["env"]); !strings.Contains(string(env), "HTTPS_PROXY") {
		t.Errorf("environment lost: %s", env)
	}
	if viewUserToken(t, kc, "static") != "abc" {
		t.Errorf("an unrelated user changed")
	}
}

func viewUserToken(t *testing.T, kubeconfig, user string) string {
	out, _ := exec.Command(kubectlPath(t), "--kubeconfig="+kubeconfig, "config", "view", "--raw", "-o", "jsonpath={.users[?(@.name==\""+user+"\")].user.token}").Output()
	return string(out)
}

// TestClusterExtensionSettings: one user entry, settings per cluster from
// the kubeconfig cluster extension that kubectl passes with
// provideClusterInfo: true.
func TestClusterExtensionSettings(t *testing.T) {
	p := providertest.StartZitadel(t, providertest.Options{})
	api := providertest.NewAPIServer(p.Issuer(), nil)
	defer api.Close()
	cacheDir := filepath.Join(t.TempDir(), "cache")
	kc := filepath.Join(t.TempDir(), "config")
	ctx := testContext(t, 2*time.Minute)
	r := runPlugin(t, ctx, invocation{args: []string{"setup", "--kubeconfig=" + kc, "--command=" + pluginBin, "--provide-cluster-info", "--cache-dir=" + cacheDir}})
	if r.exit != 0 {
		t.Fatal(r.stderr)
	}
	addCluster(t, kc, api, "device-login", map[string]any{"issuerURL": p.Issuer(), "clientID": p.ClientID(), "scopes": []string{"openid", "offline_access", "email"}})
	s := newSession(t, p, "--scope=openid", "--scope=offline_access", "--scope=email")
	s.cacheDir = cacheDir
	s.flags[2] = "--cache-dir=" + cacheDir
	if lr := runPlugin(t, ctx, invocation{args: s.args("login"), onCode: s.approve(t)}); lr.exit != 0 {
		t.Fatal(lr.stderr)
	}
	// kubectl: the settings come from the cluster, the session from login.
	r = kubectl(t, ctx, kubectlPath(t), kc, nil, "auth", "whoami")
	if r.exit != 0 || !strings.Contains(r.stdout, "alice@example.test") {
		t.Fatalf("kubectl auth whoami: exit %d\n%s\n%s", r.exit, r.stdout, r.stderr)
	}
	// client-go, from the same kubeconfig.
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.ServerVersion(); err != nil {
		t.Fatalf("client-go: %v", err)
	}
	// A misnamed extension field is a clear error, not a silent default.
	addCluster(t, kc, api, "device-login", map[string]any{"issuer": p.Issuer(), "clientID": p.ClientID()})
	r = kubectl(t, ctx, kubectlPath(t), kc, nil, "get", "--raw", "/api")
	if r.exit == 0 || !strings.Contains(r.stderr, `unknown field "issuer"`) {
		t.Errorf("misspelt extension: exit %d\n%s", r.exit, r.stderr)
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
