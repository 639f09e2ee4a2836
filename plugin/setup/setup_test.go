package setup

import (
	"bytes"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/devicelogin/kubectl-device-login/plugin"
)

// testSource is a file of this package's source.
func testSource(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hostileNames are user names a kubeconfig may hold that a shell, kubectl
// or a terminal could take for something else.
var hostileNames = []string{
	"-h", "--exec-command=evil", "--", "a'b", `a"b`, "$(touch PWNED)", "`touch PWNED`",
	"x; touch PWNED #", "#not-a-comment", " spaced ", "x\ntouch PWNED\n#", "tab\there", "ünïcode",
}

// TestPlanRunsOnlyTheKubectlCommands pipes --dry-run's plan to sh with a
// kubectl that records its arguments: each command must arrive whole,
// with the user name after "--", and nothing else may run (no PWNED).
func TestPlanRunsOnlyTheKubectlCommands(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, name := range hostileNames {
		so := Options{Context: name, Cluster: "c-" + name, Kubeconfig: "/tmp/it's here/config"}
		so.defaults()
		e := entry{name: name, args: []string{"get-token", "--issuer-url=https://a", "--extra-param=x=a,b", `--scope="q"`}, secret: "hush-hush"}
		ctxCmd, err := so.contextCommand(&kubeconfigJSON{Clusters: []struct{ Name string }{{Name: "c-" + name}}}, name)
		if err != nil {
			t.Fatal(err)
		}
		var plan bytes.Buffer
		so.Stdout = &plan
		so.printPlan([]entry{e}, ctxCmd)
		if strings.Contains(plan.String(), "hush-hush") || !strings.Contains(plan.String(), plugin.ClientSecretEnv+"=(hidden)") {
			t.Errorf("the plan shows the secret, or does not say it is hidden:\n%s", plan.String())
		}
		for _, line := range strings.Split(plan.String(), "\n") {
			if strings.HasPrefix(line, "#") && strings.ContainsAny(line, "\r\t\x1b") {
				t.Errorf("comment with a control character: %q", line)
			}
		}
		dir := t.TempDir()
		log := filepath.Join(dir, "argv")
		script := "kubectl() { for a in \"$@\"; do printf '%s\\0' \"$a\"; done >> " + plugin.ShellQuote(log) + "; printf '\\n\\0' >> " + plugin.ShellQuote(log) + "; }\n" + plan.String()
		cmd := exec.Command(sh)
		cmd.Dir, cmd.Stdin = dir, strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: sh: %v\n%s\n%s", name, err, out, plan.String())
		}
		if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
			t.Fatalf("%q: the plan ran a command of its own:\n%s", name, plan.String())
		}
		data, _ := os.ReadFile(log)
		var got [][]string
		for _, call := range strings.Split(strings.TrimSuffix(string(data), "\n\x00"), "\n\x00") {
			got = append(got, strings.Split(strings.TrimSuffix(call, "\x00"), "\x00"))
		}
		want := [][]string{so.kubectlArgs(so.setCredentials(e))[1:], so.kubectlArgs(ctxCmd)[1:]}
		if len(got) != 2 || !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
			t.Errorf("%q: kubectl ran with\n%q\nwant\n%q", name, got, want)
		}
		if w := want[0]; w[len(w)-2] != "--" || w[len(w)-1] != name || want[1][len(want[1])-1] != name {
			t.Errorf("%q: the name is not last, after --: %q", name, want)
		}
	}
}

// TestCSVFieldReadsBack: what --exec-arg is given reads back, through the
// CSV reader kubectl's flag uses, as exactly one field holding the value.
func TestCSVFieldReadsBack(t *testing.T) {
	for _, v := range []string{"--x=a", "--extra-param=a=b,c", `--scope="q"`, "two\nlines", "", " lead", "a\"\"b", "--x=\"a,b\""} {
		fields, err := csv.NewReader(strings.NewReader(csvField(v))).Read()
		if err != nil || len(fields) != 1 || fields[0] != v {
			t.Errorf("%q as %q reads back as %q (%v)", v, csvField(v), fields, err)
		}
	}
}

func TestContextCommand(t *testing.T) {
	view := &kubeconfigJSON{Contexts: []contextJSON{{Name: "prod"}, {Name: "bare"}}}
	view.Contexts[0].Context.Cluster = "prod-cluster"
	view.Clusters = []struct{ Name string }{{"prod-cluster"}, {"-lab"}}
	for _, tc := range []struct {
		context, cluster string
		want             []string
		err              string
	}{
		{"", "", nil, ""},
		{"prod", "", []string{"config", "set-context", "--user=u", "--", "prod"}, ""},
		{"prod", "-lab", []string{"config", "set-context", "--user=u", "--cluster=-lab", "--", "prod"}, ""},
		{"new", "-lab", []string{"config", "set-context", "--user=u", "--cluster=-lab", "--", "new"}, ""},
		{"-h", "-lab", []string{"config", "set-context", "--user=u", "--cluster=-lab", "--", "-h"}, ""},
		{"new", "", nil, `there is no context "new" in k: name the cluster it should use with --cluster (clusters there: "prod-cluster", "-lab")`},
		{"bare", "", nil, `the context "bare" in k names no cluster: give it one with --cluster`},
		{"prod", "nope", nil, `there is no cluster "nope" in k`},
	} {
		so := Options{Context: tc.context, Cluster: tc.cluster, Kubeconfig: "k"}
		got, err := so.contextCommand(view, "u")
		if !slices.Equal(got, tc.want) || tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("--context=%q --cluster=%q: %q, %v", tc.context, tc.cluster, got, err)
		}
	}
	if _, err := (&Options{Context: "x"}).contextCommand(&kubeconfigJSON{}, "u"); err == nil || !strings.Contains(err.Error(), "no clusters yet; add one with kubectl config set-cluster") {
		t.Errorf("empty kubeconfig: %v", err)
	}
}

// kubectlStyle is a kubeconfig as kubectl writes it, with comments a
// person added and keys out of order.
const kubectlStyle = `# managed by hand, keep this line
apiVersion: v1
kind: Config
users:
# the first user
- name: other
  user:
    token: abc # inline
- name: -h
  user:
    exec:
      command: kubectl-device_login # the plugin
      apiVersion: client.authentication.k8s.io/v1
      args:
      - get-token
      env:
      - name: NO_PROXY
        value: localhost,127.0.0.1
      - name: DEVICE_LOGIN_CLIENT_SECRET
        value: old
      interactiveMode: Never
      provideClusterInfo: false
contexts: null
current-context: "" # none
preferences: {}
# trailing comment
`

func TestEditKubeconfig(t *testing.T) {
	for _, tc := range []struct {
		name, in, user string
		edit           execEdit
		want           string // the whole output, or the error's text
		err            bool
	}{
		{
			name: "hint added, secret replaced, comments and order kept", in: kubectlStyle, user: "-h",
			edit: execEdit{installHint: "two\nlines\n", interactiveMode: "Never", secret: "123"},
			want: strings.Replace(strings.Replace(kubectlStyle, "        value: old\n", "        value: \"123\"\n", 1),
				"      interactiveMode:", "      installHint: |\n        two\n        lines\n      interactiveMode:", 1),
		},
		{
			name: "secret removed", in: kubectlStyle, user: "-h", edit: execEdit{installHint: "h", interactiveMode: "Never"},
			want: strings.Replace(strings.Replace(kubectlStyle, "      - name: DEVICE_LOGIN_CLIENT_SECRET\n        value: old\n", "", 1),
				"      interactiveMode:", "      installHint: h\n      interactiveMode:", 1),
		},
		{
			name: "hint replaced", user: "u", edit: execEdit{installHint: "new", interactiveMode: "Never"},
			in:   "users:\n- name: u\n  user:\n    exec:\n      installHint: |\n        old\n        text\n      zz: 1\n",
			want: "users:\n- name: u\n  user:\n    exec:\n      installHint: new\n      interactiveMode: Never\n      provideClusterInfo: false\n      zz: 1\n",
		},
		{
			name: "env added where there was none", user: "u", edit: execEdit{installHint: "h", interactiveMode: "Never", provideClusterInfo: true, secret: "s"},
			in:   "users:\n- name: u\n  user:\n    exec:\n      command: x\n      env: null\n",
			want: "users:\n- name: u\n  user:\n    exec:\n      command: x\n      env:\n      - name: DEVICE_LOGIN_CLIENT_SECRET\n        value: s\n      installHint: h\n      interactiveMode: Never\n      provideClusterInfo: true\n",
		},
		{
			name: "quoted name", user: "a b", edit: execEdit{installHint: "h", interactiveMode: "Never"},
			in:   "users:\n- name: \"a b\"\n  user:\n    exec: {command: x}\n",
			want: "users:\n- name: \"a b\"\n  user:\n    exec: {command: x, installHint: h, interactiveMode: Never, provideClusterInfo: false}\n",
		},
		{name: "user not found", in: kubectlStyle, user: "nobody", want: errNoUser.Error(), err: true},
		{name: "users null", in: "users: null\n", user: "u", want: errNoUser.Error(), err: true},
		{name: "empty file", in: "", user: "u", want: errNoUser.Error(), err: true},
		{name: "no exec block", in: kubectlStyle, user: "other", want: `its user "other" has no exec block`, err: true},
		{name: "not YAML", in: "users: [\n", user: "u", want: "it is not valid YAML", err: true},
		{name: "not a mapping", in: "- a\n", user: "u", want: "it is not a kubeconfig", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := editKubeconfig([]byte(tc.in), tc.user, tc.edit)
			switch {
			case tc.err && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			case !tc.err && err != nil:
				t.Errorf("error %v", err)
			case !tc.err && string(out) != tc.want:
				t.Errorf("got\n%s\nwant\n%s", out, tc.want)
			}
		})
	}
}

// TestEditFileThroughSymlink: the file a link points at is edited, the
// link stays a link, and the file keeps its mode.
func TestEditFileThroughSymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links and mode bits are Unix matters here")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "real", "config")
	os.MkdirAll(filepath.Dir(target), 0o700)
	if err := os.WriteFile(target, []byte(kubectlStyle), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "config")
	if err := os.Symlink(filepath.Join("real", "config"), link); err != nil {
		t.Fatal(err)
	}
	if err := editFile(link, "-h", execEdit{installHint: "h"}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", st.Mode(), err)
	}
	st, _ := os.Stat(target)
	data, _ := os.ReadFile(target)
	if st.Mode().Perm() != 0o640 || !strings.Contains(string(data), "installHint: h") {
		t.Errorf("target: mode %v\n%s", st.Mode(), data)
	}
	if err := editFile(link, "nobody", execEdit{}); err != errNoUser {
		t.Errorf("user not found: %v", err)
	}
}

// TestSnapshotRestores: a failed setup leaves files as they were, and
// removes one that did not exist.
func TestSnapshotRestores(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("old"), 0o600)
	s := snapshot([]string{a, b})
	os.WriteFile(a, []byte("new"), 0o600)
	os.WriteFile(b, []byte("new"), 0o600)
	if err := s.restore(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(a); string(data) != "old" {
		t.Errorf("a = %q", data)
	}
	if _, err := os.Stat(b); !os.IsNotExist(err) {
		t.Errorf("b is still there: %v", err)
	}
}

// TestInstallHintMatchesTheDocs: README and docs/kubeconfig.md show the
// installHint setup writes, and it names routes that work without krew's
// index (which does not have the plugin).
func TestInstallHintMatchesTheDocs(t *testing.T) {
	if strings.Contains(InstallHint, "krew install device-login") || !strings.Contains(InstallHint, "--manifest-url=") || !strings.Contains(InstallHint, "go install ") {
		t.Errorf("InstallHint names a route that does not work, or lacks one that does:\n%s", InstallHint)
	}
	var block strings.Builder
	block.WriteString("      installHint: |\n")
	for _, line := range strings.Split(strings.TrimSuffix(InstallHint, "\n"), "\n") {
		block.WriteString("        " + line + "\n")
	}
	for _, doc := range []string{"../../README.md", "../../docs/kubeconfig.md"} {
		if !strings.Contains(testSource(t, doc), block.String()) {
			t.Errorf("%s does not show the installHint setup writes:\n%s", doc, block.String())
		}
	}
}

func TestPlainText(t *testing.T) {
	for s, want := range map[string]bool{
		"device-login": true, "ünïcode name": true, "": true, "a b": true,
		"a\nb": false, "a\tb": false, "\x1b[2J": false, "a\u202eb": false, "a\u200bb": false, "\xff": false, "a\x7f": false,
	} {
		if plainText(s) != want {
			t.Errorf("plainText(%q) = %t", s, !want)
		}
	}
}
