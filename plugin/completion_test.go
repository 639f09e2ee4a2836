package plugin_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
)

// Completion as people meet it: `kubectl device-login <TAB>` through the
// real kubectl, which runs kubectl_complete-device_login from PATH, and
// the scripts `completion` prints, run by the shells themselves.

// completionKubeconfig writes a kubeconfig whose contexts and users
// include names with escape sequences, which must never reach a
// terminal, and a name with colons, as EKS writes them.
func completionKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config")
	kc := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: prod
  context: {cluster: c, user: alice}
- name: "arn:aws:eks:eu-west-1:1:cluster/x"
  context: {cluster: c, user: alice}
- name: "with space"
  context: {cluster: c, user: alice}
- name: "bad\e[31mred"
  context: {cluster: c, user: alice}
- name: "evil\e]0;pwned\a"
  context: {cluster: c, user: alice}
users:
- name: alice
  user: {token: not-for-completion}
- name: "evil\e[2J"
  user: {}
current-context: prod
`
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// completerDir is a directory for PATH with the plugin and kubectl's
// completer: a link to the plugin, as `make install` makes it, or the
// script `completion kubectl` prints, as a krew user installs it.
func completerDir(t *testing.T, script bool) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(pluginBin, filepath.Join(dir, "kubectl-device_login")); err != nil {
		t.Fatal(err)
	}
	completer := filepath.Join(dir, "kubectl_complete-device_login")
	if !script {
		if err := os.Symlink("kubectl-device_login", completer); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	r := runPlugin(t, testContext(t, time.Minute), invocation{args: []string{"completion", "kubectl"}})
	if r.exit != 0 || !strings.HasPrefix(r.stdout, "#!/bin/sh\n") {
		t.Fatalf("completion kubectl: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	if err := os.WriteFile(completer, []byte(r.stdout), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pathWith is the environment with dir first on PATH and kubeconfig as
// $KUBECONFIG.
func pathWith(dir, kubeconfig string) []string {
	return []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "KUBECONFIG=" + kubeconfig, "KUBERC=off"}
}

// completed splits a __complete answer into values and directive, and
// fails on any control character but the tab and newline of the format.
func completed(t *testing.T, what, out string) ([]string, string) {
	t.Helper()
	for _, r := range out {
		if unicode.IsControl(r) && r != '\t' && r != '\n' {
			t.Errorf("%s: a control character %q reached the output:\n%q", what, r, out)
		}
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var values []string
	for _, l := range lines[:len(lines)-1] {
		v, _, _ := strings.Cut(l, "\t")
		values = append(values, v)
	}
	return values, lines[len(lines)-1]
}

func TestCompletionThroughKubectl(t *testing.T) {
	t.Parallel()
	kubectl := kubectlPath(t)
	kubectls := map[string]string{"kubectl": kubectl}
	// The oldest kubectl beside it (plugin completion came in 1.26).
	if real, err := filepath.EvalSymlinks(kubectl); err == nil {
		if p := filepath.Join(filepath.Dir(real), "kubectl.1.27"); fileExists(p) {
			kubectls["kubectl.1.27"] = p
		} else {
			t.Logf("%s is absent; only %s is tried", p, kubectl)
		}
	}
	kc := completionKubeconfig(t)
	ctx := testContext(t, 2*time.Minute)
	for name, bin := range kubectls {
		for install, script := range map[string]bool{"link": false, "script": true} {
			t.Run(name+"/"+install, func(t *testing.T) {
				env := pathWith(completerDir(t, script), kc)
				for _, tc := range []struct {
					words     []string
					want      []string
					directive string
				}{
					{[]string{""}, []string{"get-token", "login", "logout", "status", "setup", "version", "completion"}, ":4"},
					{[]string{"s"}, []string{"status", "setup"}, ":4"},
					{[]string{"get-token", "--token", ""}, []string{"access_token", "id_token"}, ":4"},
					{[]string{"get-token", "--token=i"}, []string{"id_token"}, ":4"},
					{[]string{"get-token", "--device-login", ""}, []string{"auto", "always", "never"}, ":4"},
					{[]string{"get-token", "-o", ""}, []string{"json", "token"}, ":4"},
					{[]string{"status", "-o", ""}, []string{"text", "json"}, ":4"},
					{[]string{"setup", "--context", ""}, []string{"arn:aws:eks:eu-west-1:1:cluster/x", "prod", "with space"}, ":4"},
					{[]string{"setup", "--user="}, []string{"device-login", "alice"}, ":4"},
					{[]string{"get-token", "--cache-dir", ""}, nil, ":16"},
					{[]string{"setup", "--kubeconfig", ""}, nil, ":0"},
				} {
					r := runBinary(t, ctx, bin, invocation{args: append([]string{"__complete", "device-login"}, tc.words...), env: env})
					what := "kubectl __complete device-login " + strings.Join(tc.words, " ")
					if r.exit != 0 {
						t.Fatalf("%s: exit %d\n%s", what, r.exit, r.stderr)
					}
					got, directive := completed(t, what, r.stdout)
					if !slices.Equal(got, tc.want) || directive != tc.directive {
						t.Errorf("%s:\n got %q %s\nwant %q %s\nstderr:\n%s", what, got, directive, tc.want, tc.directive, r.stderr)
					}
					if strings.Contains(r.stdout, "bad") || strings.Contains(r.stdout, "evil") {
						t.Errorf("%s: a name with an escape sequence was offered:\n%q", what, r.stdout)
					}
				}
			})
		}
	}
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// TestCompletionBash sources the bash script and calls its function as
// bash does on TAB: COMP_WORDS split at bash's word breaks (= and :),
// COMP_LINE and COMP_POINT; compopt is recorded, since it works only
// inside a real completion.
func TestCompletionBash(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	r := runPlugin(t, ctx, invocation{args: []string{"completion", "bash"}})
	if r.exit != 0 {
		t.Fatalf("completion bash: exit %d\n%s", r.exit, r.stderr)
	}
	script := filepath.Join(t.TempDir(), "kubectl-device_login.bash")
	if err := os.WriteFile(script, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	env := pathWith(completerDir(t, false), completionKubeconfig(t))
	const driver = `source "$1" || exit 1
compopt() { echo "compopt $*"; }
COMP_LINE=$2 COMP_POINT=${#2}
shift 2
COMP_WORDS=("$@") COMP_CWORD=$(($# - 1))
_kubectl_device_login
printf 'reply %s\n' "${COMPREPLY[@]}"`
	for _, tc := range []struct {
		words []string // as bash splits the line
		want  []string
	}{
		{[]string{""}, []string{"reply completion", "reply get-token", "reply login", "reply logout", "reply setup", "reply status", "reply version"}},
		{[]string{"lo"}, []string{"reply login", "reply logout"}},
		{[]string{"get-token", "--token", "="}, []string{"reply access_token", "reply id_token"}},
		{[]string{"get-token", "--token", "=", "i"}, []string{"reply id_token"}},
		{[]string{"get-token", "--token", ""}, []string{"reply access_token", "reply id_token"}},
		{[]string{"status", "-o", ""}, []string{"reply json", "reply text"}},
		// bash replaces only what follows the last colon.
		{[]string{"setup", "--context", "=", "arn", ":", "aws", ":", "eks", ":", "eu"}, []string{"reply eu-west-1:1:cluster/x"}},
		{[]string{"setup", "--context", "arn", ":"}, []string{"reply aws:eks:eu-west-1:1:cluster/x"}},
		{[]string{"setup", "--context", ""}, []string{"reply arn:aws:eks:eu-west-1:1:cluster/x", "reply prod", `reply with\ space`}},
		{[]string{"setup", "--user", ""}, []string{"reply alice", "reply device-login"}},
		// No candidates: file names, directory names, or nothing.
		{[]string{"setup", "--kubeconfig", "=", "/t"}, []string{"compopt -o default", "reply "}},
		{[]string{"login", "--cache-dir", ""}, []string{"compopt -o dirnames", "reply "}},
		{[]string{"login", "--issuer-url", ""}, []string{"reply "}},
	} {
		words := append([]string{"kubectl-device_login"}, tc.words...)
		line := strings.Join(words[:2], " ")
		for i, w := range words[2:] {
			// The line as typed: no space around the word breaks.
			if w == "=" || w == ":" || words[i+1] == "=" || words[i+1] == ":" {
				line += w
			} else {
				line += " " + w
			}
		}
		args := append([]string{"-c", driver, "driver", script, line}, words...)
		r := runBinary(t, ctx, "bash", invocation{args: args, env: env})
		got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tc.want))
		if r.exit != 0 || !slices.Equal(got, want) {
			t.Errorf("bash, %q: exit %d\n got %q\nwant %q\n%s", line, r.exit, got, want, r.stderr)
		}
		if strings.ContainsRune(r.stdout, '\x1b') {
			t.Errorf("bash, %q: an escape sequence reached COMPREPLY: %q", line, r.stdout)
		}
	}
}

// TestCompletionFish runs fish's own completion (complete -C) with the
// fish script loaded, when fish is installed.
func TestCompletionFish(t *testing.T) {
	t.Parallel()
	fish, err := exec.LookPath("fish")
	if err != nil {
		t.Skip("fish is not installed")
	}
	ctx := testContext(t, 2*time.Minute)
	r := runPlugin(t, ctx, invocation{args: []string{"completion", "fish"}})
	if r.exit != 0 {
		t.Fatalf("completion fish: exit %d\n%s", r.exit, r.stderr)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "kubectl-device_login.fish")
	if err := os.WriteFile(script, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	env := pathWith(completerDir(t, false), completionKubeconfig(t))
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"kubectl-device_login log", []string{"login\tsign in now, in this terminal", "logout\tdelete a cached session and revoke it at the provider"}},
		{"kubectl-device_login get-token --token=", []string{"--token=access_token\tdefault", "--token=id_token"}},
		{"kubectl-device_login get-token --token ", []string{"access_token\tdefault", "id_token"}},
		{"kubectl-device_login setup --context ", []string{"arn:aws:eks:eu-west-1:1:cluster/x", "prod", "with space"}},
		// Descriptions are data: fish used to expand the $ in them.
		{"kubectl-device_login login --client-secret", []string{
			"--client-secret\tclient secret, for confidential clients only (visible to every user of this machine on the command line: prefer $DEVICE_LOGIN_CLIENT_SECRET or --client-secret-file)",
			"--client-secret-file\tfile that holds the client secret",
		}},
		{"kubectl-device_login login --cache-dir=" + dir + "/s", []string{"--cache-dir=" + dir + "/subdir/\tDirectory"}},
		{"kubectl-device_login login --issuer-url ", nil},
	} {
		r := runBinary(t, ctx, fish, invocation{args: []string{"--no-config", "-c", "source $argv[1]; complete -C $argv[2]", script, tc.line}, env: env})
		var got []string
		if out := strings.TrimSuffix(r.stdout, "\n"); out != "" {
			got = strings.Split(out, "\n")
		}
		if r.exit != 0 || !slices.Equal(got, tc.want) {
			t.Errorf("fish, %q: exit %d\n got %q\nwant %q\n%s", tc.line, r.exit, got, tc.want, r.stderr)
		}
	}
}
