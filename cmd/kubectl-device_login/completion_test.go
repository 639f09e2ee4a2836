package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/status"
)

// completeLine runs `__complete WORDS...` in process and returns the
// candidates (without descriptions) and the directive.
func completeLine(t *testing.T, words ...string) ([]string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{completeCommand}, words...), &stdout, &stderr); code != 0 || stderr.Len() > 0 {
		t.Fatalf("__complete %q: exit %d, stderr %q", words, code, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	directive, err := strconv.Atoi(strings.TrimPrefix(last, ":"))
	if !strings.HasPrefix(last, ":") || err != nil {
		t.Fatalf("__complete %q: no directive line at the end:\n%s", words, stdout.String())
	}
	var values []string
	for _, l := range lines[:len(lines)-1] {
		v, _, _ := strings.Cut(l, "\t")
		values = append(values, v)
	}
	return values, directive
}

func commandNames() []string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return names
}

func TestCompleteForms(t *testing.T) {
	for _, tc := range []struct {
		words     []string
		want      []string
		directive int
	}{
		{[]string{""}, commandNames(), directiveNoFileComp},
		{nil, commandNames(), directiveNoFileComp},
		{[]string{"lo"}, []string{"login", "logout"}, directiveNoFileComp},
		{[]string{"nosuch", ""}, nil, directiveNoFileComp},
		// --flag value, --flag=value, -o value, -o=value, -ovalue, -vo value.
		{[]string{"get-token", "--token", ""}, plugin.Allowed("token"), directiveNoFileComp},
		{[]string{"get-token", "--token=i"}, []string{plugin.TokenID}, directiveNoFileComp},
		{[]string{"get-token", "--token="}, plugin.Allowed("token"), directiveNoFileComp},
		{[]string{"get-token", "-o", ""}, plugin.Allowed("output"), directiveNoFileComp},
		{[]string{"get-token", "-o=t"}, []string{plugin.OutputToken}, directiveNoFileComp},
		{[]string{"get-token", "-vo", ""}, plugin.Allowed("output"), directiveNoFileComp},
		{[]string{"get-token", "-vo=j"}, []string{plugin.OutputJSON}, directiveNoFileComp},
		{[]string{"status", "-o", ""}, status.Formats(), directiveNoFileComp},
		{[]string{"status", "--output=j"}, []string{"json"}, directiveNoFileComp},
		{[]string{"login", "--verbose="}, []string{"true", "false"}, directiveNoFileComp},
		// A value given inline does not make the next word a value.
		{[]string{"get-token", "-ojson", "--qr", ""}, plugin.Allowed("qr"), directiveNoFileComp},
		{[]string{"get-token", "--token=id_token", "--tok"}, []string{"--token-endpoint", "--token-cache"}, directiveNoFileComp},
		{[]string{"get-token", "--token", "id_token", "--tok"}, []string{"--token-endpoint", "--token-cache"}, directiveNoFileComp},
		// Repeatable flags stay on offer.
		{[]string{"login", "--scope=openid", "--sc"}, []string{"--scope"}, directiveNoFileComp},
		// Short flags too; a boolean does not take the next word.
		{[]string{"status", "-"}, []string{"--output", "-o", "--cache-dir", "--token-cache", "--verbose", "-v"}, directiveNoFileComp},
		{[]string{"status", "-v", "-o", ""}, status.Formats(), directiveNoFileComp},
		// Free values: nothing to offer, and no file names either.
		{[]string{"get-token", "--issuer-url", ""}, nil, directiveNoFileComp},
		{[]string{"get-token", "--issuer-url", "--"}, nil, directiveNoFileComp},
		// Files and directories: the shell completes them.
		{[]string{"get-token", "--cache-dir", ""}, nil, directiveFilterDirs},
		{[]string{"get-token", "--cache-dir=/t"}, nil, directiveFilterDirs},
		{[]string{"get-token", "--certificate-authority", ""}, nil, directiveFiles},
		{[]string{"login", "--client-secret-file="}, nil, directiveFiles},
		{[]string{"setup", "--kubeconfig", "/tmp/x"}, nil, directiveFiles},
		// completion takes one shell, then nothing.
		{[]string{"completion", ""}, shellNames(), directiveNoFileComp},
		{[]string{"completion", "p"}, []string{"powershell"}, directiveNoFileComp},
		{[]string{"completion", "bash", ""}, nil, directiveNoFileComp},
		{[]string{"version", ""}, nil, directiveNoFileComp},
		// After --, words are arguments.
		{[]string{"get-token", "--", "--t"}, nil, directiveNoFileComp},
	} {
		got, directive := completeLine(t, tc.words...)
		if !slices.Equal(got, tc.want) || directive != tc.directive {
			t.Errorf("__complete %q:\n got %q :%d\nwant %q :%d", tc.words, got, directive, tc.want, tc.directive)
		}
	}
}

// TestCompleteEveryFlag walks the command table: every command offers
// all its flags, every enumerated flag its values from plugin.Allowed,
// and every flag name the completion knows about exists.
func TestCompleteEveryFlag(t *testing.T) {
	known := map[string]bool{"context": true, "user": true}
	for _, cmd := range commands() {
		fs := flagSet(cmd, &values{})
		var want []string
		fs.VisitAll(func(f *pflag.Flag) {
			want = append(want, "--"+f.Name)
			if f.Shorthand != "" {
				want = append(want, "-"+f.Shorthand)
			}
			known[f.Name] = true
			allowed := plugin.Allowed(f.Name)
			if cmd.name == "status" && f.Name == "output" {
				allowed = status.Formats()
			}
			if allowed == nil {
				return
			}
			got, d := completeLine(t, cmd.name, "--"+f.Name, "")
			if !slices.Equal(got, allowed) || d != directiveNoFileComp {
				t.Errorf("%s --%s: got %q :%d, want %q", cmd.name, f.Name, got, d, allowed)
			}
		})
		if takesArguments(cmd) {
			continue
		}
		got, _ := completeLine(t, cmd.name, "-")
		if !slices.Equal(got, want) {
			t.Errorf("%s -: got %q, want %q", cmd.name, got, want)
		}
		got, _ = completeLine(t, cmd.name, "")
		if !slices.Equal(got, want) {
			t.Errorf("%s '': got %q, want %q", cmd.name, got, want)
		}
	}
	for _, name := range []string{"kubeconfig", "certificate-authority", "client-secret-file", "cache-dir"} {
		if _, ok := fileFlags(name); !ok || !known[name] {
			t.Errorf("--%s: file flag %v, defined %v", name, ok, known[name])
		}
	}
}

// TestCompleteKubeconfigNames asks the real kubectl for setup's --context
// and --user, from $KUBECONFIG or from --kubeconfig given earlier.
func TestCompleteKubeconfigNames(t *testing.T) {
	dir := t.TempDir()
	write := func(name, contexts, users string) string {
		p := filepath.Join(dir, name)
		kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n" + contexts + "users:\n" + users
		if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := write("env", `- name: prod
  context: {cluster: c, user: alice}
- name: "arn:aws:eks:eu-west-1:1:cluster/x"
  context: {cluster: c, user: alice}
- name: "bad\e]0;title\a"
  context: {cluster: c, user: alice}
- name: "tab\there"
  context: {cluster: c, user: alice}
`, `- name: alice
  user: {token: not-shown}
- name: "evil\e[2J"
  user: {}
`)
	other := write("other", "- name: staging\n  context: {cluster: c, user: bob}\n", "- name: bob\n  user: {}\n")
	t.Setenv("KUBECONFIG", env)
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"setup", "--context", ""}, []string{"arn:aws:eks:eu-west-1:1:cluster/x", "prod"}},
		{[]string{"setup", "--context=arn:"}, []string{"arn:aws:eks:eu-west-1:1:cluster/x"}},
		{[]string{"setup", "--user", ""}, []string{"device-login", "alice"}},
		{[]string{"setup", "--kubeconfig", other, "--context", ""}, []string{"staging"}},
		{[]string{"setup", "--kubeconfig=" + other, "--user="}, []string{"device-login", "bob"}},
		{[]string{"setup", "--kubeconfig", filepath.Join(dir, "missing"), "--context", ""}, nil},
	} {
		got, d := completeLine(t, tc.words...)
		if !slices.Equal(got, tc.want) || d != directiveNoFileComp {
			t.Errorf("__complete %q: got %q :%d, want %q :4", tc.words, got, d, tc.want)
		}
	}
	// No kubectl: no names, and no complaint.
	t.Setenv("PATH", dir)
	if got, _ := completeLine(t, "setup", "--context", ""); got != nil {
		t.Errorf("without kubectl: %q", got)
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct{ argv, want []string }{
		{[]string{"/usr/local/bin/kubectl_complete-device_login", "get-token", ""}, []string{"__complete", "get-token", ""}},
		{[]string{"kubectl_complete-device_login.exe"}, []string{"__complete"}},
		{[]string{"/usr/local/bin/kubectl-device_login", "get-token"}, []string{"get-token"}},
		{[]string{"kubectl-device_login"}, []string{}},
	} {
		if got := commandLine(tc.argv); !slices.Equal(got, tc.want) {
			t.Errorf("commandLine(%q) = %q, want %q", tc.argv, got, tc.want)
		}
	}
}
