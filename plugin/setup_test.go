package plugin_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

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
	t.Parallel()
	p := providertest.StartNode(t, providertest.Options{})
	api := providertest.NewAPIServer(p.Issuer(), nil)
	defer api.Close()
	// A comma in an argument: kubectl reads --exec-arg as CSV.
	s := newSession(t, p, "--extra-param=x-note=a,b")
	kc := filepath.Join(t.TempDir(), "config")
	ctx := testContext(t, 2*time.Minute)

	// --dry-run: prints the plan, changes nothing.
	r := runPlugin(t, ctx, invocation{args: append([]string{"setup", "--dry-run", "--kubeconfig=" + kc, "--command=" + pluginBin}, s.flags...)})
	if r.exit != 0 || !strings.Contains(r.stdout, "config set-credentials --exec-api-version=") || !strings.Contains(r.stdout, "#   interactiveMode: Never\n") || !strings.Contains(r.stdout, " -- device-login\n") {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.exit, r.stdout, r.stderr)
	}
	if _, err := os.Stat(kc); !os.IsNotExist(err) {
		t.Fatalf("--dry-run wrote the kubeconfig")
	}

	addCluster(t, kc, api, "nobody", nil)
	r = runPlugin(t, ctx, invocation{args: append([]string{"setup", "--kubeconfig=" + kc, "--command=" + pluginBin, "--user=olympus", "--context=prod", "--cluster=test"}, s.flags...)})
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
	r = kubectl(t, ctx, kubectlPath(t), kc, s.approve(t), "--context=prod", "get", "--raw", "/api")
	// interactiveMode Never and stderr a pipe: no device login may start.
	if r.exit == 0 || !strings.Contains(r.stderr, "no terminal to show a sign-in code on") {
		t.Fatalf("kubectl without a terminal: exit %d\n%s", r.exit, r.stderr)
	}
	if lr := runPlugin(t, ctx, invocation{args: s.args("login"), onCode: s.approve(t)}); lr.exit != 0 {
		t.Fatal(lr.stderr)
	}
	r = kubectl(t, ctx, kubectlPath(t), kc, nil, "--context=prod", "get", "--raw", "/api")
	if r.exit != 0 || !strings.Contains(r.stdout, "APIVersions") {
		t.Fatalf("kubectl after login: exit %d\n%s", r.exit, r.stderr)
	}
}

func TestSetupFromKubelogin(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

// The defects below were found by a review on eeaec19; each test fails
// there (run with DEVICE_LOGIN_BIN set to that build) and passes now.

// kubeloginConfig writes a kubeconfig whose users run kubelogin's
// get-token with these arguments (after "oidc-login get-token") and
// environment, through client-go, which writes any name as given.
func kubeloginConfig(t *testing.T, users map[string][]string, env []clientcmdapi.ExecEnvVar) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	for name, args := range users {
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
			APIVersion: "client.authentication.k8s.io/v1beta1", Command: "kubectl",
			Args: append([]string{"oidc-login", "get-token"}, args...), Env: env,
		}}
	}
	kc := filepath.Join(t.TempDir(), "config")
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		t.Fatal(err)
	}
	return kc
}

// fakeKubectl puts a kubectl first on PATH that runs script (sh) and
// returns the PATH entry for the invocation.
func fakeKubectl(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kubectl"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// TestSetupDryRunPlanIsSafeToPipeToSh (issue 14, defect 6): whatever the
// user names hold, the --dry-run plan piped to sh runs the kubectl
// commands it shows, each with the name whole and after "--", and
// nothing else.
func TestSetupDryRunPlanIsSafeToPipeToSh(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	work := t.TempDir()
	pwned := filepath.Join(work, "PWNED")
	args := []string{"--oidc-issuer-url=https://auth.example.com", "--oidc-client-id=k"}
	log := filepath.Join(work, "argv")
	path := fakeKubectl(t, `for a in "$@"; do printf '%s\0' "$a"; done >> `+plugin.ShellQuote(log)+"\nprintf '\\n\\0' >> "+plugin.ShellQuote(log)+"\n")
	pipe := func(plan string) {
		t.Helper()
		cmd := exec.Command("sh")
		cmd.Dir, cmd.Stdin, cmd.Env = work, strings.NewReader(plan), append(os.Environ(), path)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sh: %v\n%s", err, out)
		}
		if _, err := os.Stat(pwned); err == nil {
			t.Fatalf("piping the plan to sh ran a command of its own:\n%s", plan)
		}
	}

	// A name with line breaks would leave a comment: it is refused.
	kc := kubeloginConfig(t, map[string][]string{"x\ntouch " + pwned + "\n#": args}, nil)
	r := runPlugin(t, ctx, invocation{args: []string{"setup", "--from-kubelogin", "--dry-run", "--kubeconfig=" + kc}})
	pipe(r.stdout)
	if r.exit == 0 || !strings.Contains(r.stderr, "holds control or invisible characters") {
		t.Errorf("a name with line breaks: exit %d\n%s", r.exit, r.stderr)
	}

	// Names a shell or kubectl would read as something else are quoted.
	names := []string{"-h", "--exec-command=evil", "$(touch " + pwned + ")", "a'b; touch " + pwned + " #"}
	users := map[string][]string{}
	for _, n := range names {
		users[n] = args
	}
	kc = kubeloginConfig(t, users, nil)
	r = runPlugin(t, ctx, invocation{args: []string{"setup", "--from-kubelogin", "--dry-run", "--kubeconfig=" + kc}})
	if r.exit != 0 {
		t.Fatalf("exit %d\n%s", r.exit, r.stderr)
	}
	pipe(r.stdout)
	data, _ := os.ReadFile(log)
	var got []string
	for _, call := range strings.Split(strings.TrimSuffix(string(data), "\n\x00"), "\n\x00") {
		argv := strings.Split(strings.TrimSuffix(call, "\x00"), "\x00")
		if len(argv) < 4 || argv[1] != "config" || argv[2] != "set-credentials" || argv[len(argv)-2] != "--" {
			t.Errorf("kubectl ran with %q", argv)
			continue
		}
		got = append(got, argv[len(argv)-1])
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("kubectl set-credentials ran for %q, want %q\n%s", got, names, r.stdout)
	}
}

// TestSetupFromKubeloginNamesThatLookLikeFlags (issue 14, defect 7): a
// user named -h or --exec-command=… is converted like any other.
func TestSetupFromKubeloginNamesThatLookLikeFlags(t *testing.T) {
	t.Parallel()
	names := []string{"-h", "--exec-command=evil"}
	users := map[string][]string{}
	for _, n := range names {
		users[n] = []string{"--oidc-issuer-url=https://auth.example.com", "--oidc-client-id=k"}
	}
	kc := kubeloginConfig(t, users, nil)
	r := runPlugin(t, testContext(t, time.Minute), invocation{args: []string{"setup", "--from-kubelogin", "--kubeconfig=" + kc}})
	if r.exit != 0 || !strings.Contains(r.stderr, "Converted 2 user(s)") {
		t.Fatalf("exit %d\n%s", r.exit, r.stderr)
	}
	for _, n := range names {
		x := viewUser(t, kc, n)
		args, _ := json.Marshal(x["args"])
		if x["command"] != "kubectl-device_login" || !strings.Contains(string(args), `"--issuer-url=https://auth.example.com"`) {
			t.Errorf("user %q: %v", n, x)
		}
	}
}

// TestSetupChecksEachStep (issue 14, defect 7): a kubectl step that
// claims success without doing its work is caught by reading the entry
// back, and nothing is left changed.
func TestSetupChecksEachStep(t *testing.T) {
	t.Parallel()
	kc := filepath.Join(t.TempDir(), "config")
	real := kubectlPath(t)
	path := fakeKubectl(t, `case "$*" in *"config set-credentials"*) echo "kubectl controls the Kubernetes cluster manager."; exit 0;; esac
exec `+plugin.ShellQuote(real)+` "$@"
`)
	if out, err := exec.Command(real, "--kubeconfig="+kc, "config", "set-cluster", "c", "--server=https://127.0.0.1:1").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	before, _ := os.ReadFile(kc)
	r := runPlugin(t, testContext(t, time.Minute), invocation{
		args: []string{"setup", "--kubeconfig=" + kc, "--issuer-url=http://127.0.0.1:1", "--client-id=k"},
		env:  []string{path},
	})
	after, _ := os.ReadFile(kc)
	if r.exit == 0 || strings.Contains(r.stderr, "Wrote user") || !strings.Contains(r.stderr, "the kubeconfig was left as it was") {
		t.Errorf("a set-credentials that did nothing: exit %d\n%s", r.exit, r.stderr)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("the kubeconfig changed:\n%s", after)
	}
}

// TestSetupFromKubeloginKeepsValues (issue 14, defect 8; issue 13): the
// environment is kept byte for byte, kubelogin's extra-params map becomes
// one --extra-param per pair, and the CA data, grant type and PKCE carry
// over.
func TestSetupFromKubeloginKeepsValues(t *testing.T) {
	t.Parallel()
	ca := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	env := []clientcmdapi.ExecEnvVar{{Name: "NO_PROXY", Value: "localhost,127.0.0.1"}, {Name: "QUOTED", Value: `"x", 'y'`}}
	kc := kubeloginConfig(t, map[string][]string{"oidc": {
		"--oidc-issuer-url=https://auth.example.com", "--oidc-client-id=k",
		"--oidc-auth-request-extra-params=audience=kubernetes,prompt=consent",
		"--certificate-authority-data=" + ca, "--certificate-authority-data", ca,
		"--grant-type=device-code", "--oidc-use-pkce", "--listen-address=127.0.0.1:8000",
	}}, env)
	r := runPlugin(t, testContext(t, time.Minute), invocation{args: []string{"setup", "--from-kubelogin", "--kubeconfig=" + kc}})
	if r.exit != 0 || !strings.Contains(r.stderr, "not carried over: --listen-address") {
		t.Fatalf("exit %d\n%s", r.exit, r.stderr)
	}
	x := viewUser(t, kc, "oidc")
	gotArgs, _ := json.Marshal(x["args"])
	wantArgs, _ := json.Marshal([]string{"get-token", "--scope=openid", "--scope=offline_access", "--token=id_token",
		"--issuer-url=https://auth.example.com", "--client-id=k",
		"--certificate-authority-data=" + ca, "--certificate-authority-data=" + ca,
		"--extra-param=audience=kubernetes", "--extra-param=prompt=consent", "--grant-type=device-code", "--pkce=always"})
	if string(gotArgs) != string(wantArgs) {
		t.Errorf("args\n%s\nwant\n%s", gotArgs, wantArgs)
	}
	gotEnv, _ := json.Marshal(x["env"])
	wantEnv, _ := json.Marshal([]map[string]string{{"name": "NO_PROXY", "value": "localhost,127.0.0.1"}, {"name": "QUOTED", "value": `"x", 'y'`}})
	if string(gotEnv) != string(wantEnv) {
		t.Errorf("env\n%s\nwant\n%s", gotEnv, wantEnv)
	}
}

// TestSetupFromKubeloginRefusesEscapeSequences (issue 14, defect 9): a
// kubeconfig string with terminal escape sequences never reaches the
// terminal; the entry is refused with a readable message, and nothing is
// written.
func TestSetupFromKubeloginRefusesEscapeSequences(t *testing.T) {
	t.Parallel()
	kc := kubeloginConfig(t, map[string][]string{"oidc": {
		"--oidc-issuer-url=https://auth.example.com", "--oidc-client-id=k",
		"--insecure-skip-tls-verify", "--oidc-extra-scope=email\x1b[1A\x1b[2K", // hides the line above
		"--browser-command=\x1b]52;c;cHduZWQ=\a", // OSC 52 writes the clipboard
	}}, nil)
	before, _ := os.ReadFile(kc)
	for _, dry := range []string{"--dry-run", "--dry-run=false"} {
		r := runPlugin(t, testContext(t, time.Minute), invocation{args: []string{"setup", "--from-kubelogin", "--kubeconfig=" + kc, dry}})
		if strings.ContainsAny(r.stderr+r.stdout, "\x1b\a") {
			t.Errorf("%s: an escape sequence reached the terminal: %q", dry, r.stderr+r.stdout)
		}
		if r.exit == 0 || !strings.Contains(r.stderr, `user "oidc": its argument 6 ("--oidc-extra-scope") holds control or invisible characters`) {
			t.Errorf("%s: exit %d\n%s", dry, r.exit, r.stderr)
		}
	}
	if after, _ := os.ReadFile(kc); !bytes.Equal(before, after) {
		t.Errorf("the kubeconfig changed:\n%s", after)
	}
}

// TestSetupKeepsTheClientSecretOutOfArgv (issue 12, defect 9): setup
// stores a client secret in the exec block's env (or the file flag that
// names it), never in the arguments, and never prints it; the entry
// works as kubectl runs it.
func TestSetupKeepsTheClientSecretOutOfArgv(t *testing.T) {
	t.Parallel()
	const secret = "setup-secret-5e1f"
	srv := confidentialProvider(t, secret)
	ctx := testContext(t, time.Minute)
	kc := filepath.Join(t.TempDir(), "config")
	cacheDir := filepath.Join(t.TempDir(), "cache")
	flags := []string{"setup", "--kubeconfig=" + kc, "--command=" + pluginBin, "--issuer-url=" + srv.URL, "--client-id=confidential", "--cache-dir=" + cacheDir, "--client-secret=" + secret}

	r := runPlugin(t, ctx, invocation{args: append(flags, "--dry-run")})
	if r.exit != 0 || strings.Contains(r.stdout+r.stderr, secret) || !strings.Contains(r.stdout, "DEVICE_LOGIN_CLIENT_SECRET=(hidden)") {
		t.Errorf("--dry-run: exit %d\n%s\n%s", r.exit, r.stdout, r.stderr)
	}
	r = runPlugin(t, ctx, invocation{args: flags})
	if r.exit != 0 || strings.Contains(r.stderr, secret) || !strings.Contains(r.stderr, "in plain text") {
		t.Fatalf("setup: exit %d\n%s", r.exit, r.stderr)
	}
	x := viewUser(t, kc, "device-login")
	args, _ := json.Marshal(x["args"])
	env, _ := json.Marshal(x["env"])
	if strings.Contains(string(args), secret) || string(env) != `[{"name":"DEVICE_LOGIN_CLIENT_SECRET","value":"`+secret+`"}]` {
		t.Fatalf("args %s, env %s", args, env)
	}
	// Run the entry as kubectl does: its command, arguments and env.
	var argv []string
	for _, a := range x["args"].([]any) {
		argv = append(argv, a.(string))
	}
	r = runPlugin(t, ctx, invocation{args: append(argv, "--device-login=always"), env: []string{"DEVICE_LOGIN_CLIENT_SECRET=" + secret}})
	if r.exit != 0 || !strings.Contains(r.stdout, "conf-access-token-1") {
		t.Errorf("the entry does not sign in: exit %d\n%s", r.exit, r.stderr)
	}

	// Set up again without a secret: the old one goes. With a secret
	// file, the file is named instead.
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	r = runPlugin(t, ctx, invocation{args: append(flags[:len(flags)-1], "--client-secret-file="+secretFile)})
	x = viewUser(t, kc, "device-login")
	args, _ = json.Marshal(x["args"])
	if env, _ := x["env"].([]any); r.exit != 0 || len(env) != 0 || !strings.Contains(string(args), `"--client-secret-file=`+secretFile+`"`) || strings.Contains(string(args), secret) {
		t.Errorf("with --client-secret-file: exit %d, args %s, env %v\n%s", r.exit, args, x["env"], r.stderr)
	}

	// kubelogin's --oidc-client-secret moves to env too.
	kc = kubeloginConfig(t, map[string][]string{"oidc": {"--oidc-issuer-url=https://auth.example.com", "--oidc-client-id=k", "--oidc-client-secret=" + secret}}, nil)
	for _, dry := range []string{"--dry-run", "--dry-run=false"} {
		r = runPlugin(t, ctx, invocation{args: []string{"setup", "--from-kubelogin", "--kubeconfig=" + kc, dry}})
		if r.exit != 0 || strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("--from-kubelogin %s: exit %d\n%s\n%s", dry, r.exit, r.stdout, r.stderr)
		}
	}
	x = viewUser(t, kc, "oidc")
	args, _ = json.Marshal(x["args"])
	env, _ = json.Marshal(x["env"])
	if strings.Contains(string(args), secret) || string(env) != `[{"name":"DEVICE_LOGIN_CLIENT_SECRET","value":"`+secret+`"}]` {
		t.Errorf("converted: args %s, env %s", args, env)
	}
}

// TestSetupEditsAKubeconfigThroughItsSymlink (issue 12, defect 10): the
// link stays, the file it points at changes.
func TestSetupEditsAKubeconfigThroughItsSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "dotfiles", "kubeconfig")
	os.MkdirAll(filepath.Dir(target), 0o700)
	if out, err := exec.Command(kubectlPath(t), "--kubeconfig="+target, "config", "set-cluster", "c", "--server=https://127.0.0.1:1").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	link := filepath.Join(dir, "config")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	r := runPlugin(t, testContext(t, time.Minute), invocation{args: []string{"setup", "--kubeconfig=" + link, "--issuer-url=http://127.0.0.1:1", "--client-id=k"}})
	if r.exit != 0 {
		t.Fatalf("exit %d\n%s", r.exit, r.stderr)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link was replaced by a file (%v, %v)", st.Mode(), err)
	}
	if data, _ := os.ReadFile(target); !strings.Contains(string(data), "installHint") || !strings.Contains(string(data), "name: c\n") {
		t.Errorf("the file the link points at:\n%s", data)
	}
}

// TestSetupRefusesAContextWithoutCluster (issue 12, defect 10): a context
// that does not exist is created only with --cluster naming a cluster of
// the kubeconfig; otherwise nothing is written.
func TestSetupRefusesAContextWithoutCluster(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	kc := filepath.Join(t.TempDir(), "config")
	k := kubectlPath(t)
	if out, err := exec.Command(k, "--kubeconfig="+kc, "config", "set-cluster", "test", "--server=https://127.0.0.1:1").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	before, _ := os.ReadFile(kc)
	setup := []string{"setup", "--kubeconfig=" + kc, "--issuer-url=http://127.0.0.1:1", "--client-id=k", "--context=prod"}
	for _, tc := range []struct {
		more []string
		want string
	}{
		{nil, `there is no context "prod" in ` + kc + `: name the cluster it should use with --cluster (clusters there: "test")`},
		{[]string{"--cluster=nope"}, `there is no cluster "nope"`},
	} {
		r := runPlugin(t, ctx, invocation{args: append(setup, tc.more...)})
		if r.exit == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d\n%s", tc.more, r.exit, r.stderr)
		}
		if after, _ := os.ReadFile(kc); !bytes.Equal(before, after) {
			t.Errorf("%q: the kubeconfig changed:\n%s", tc.more, after)
		}
	}
	r := runPlugin(t, ctx, invocation{args: append(setup, "--cluster=test")})
	out, _ := exec.Command(k, "--kubeconfig="+kc, "config", "view", "-o", `jsonpath={.contexts[?(@.name=="prod")].context.cluster}/{.contexts[?(@.name=="prod")].context.user}`).Output()
	if r.exit != 0 || string(out) != "test/device-login" {
		t.Errorf("with --cluster=test: exit %d, context %q\n%s", r.exit, out, r.stderr)
	}
}
