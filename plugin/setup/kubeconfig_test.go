package setup

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/devicelogin/kubectl-device-login/plugin"
)

// TestEditKeepsTheRestByteForByte: only the exec block is written anew;
// around it, layouts a YAML printer would change (wide gaps, four-space
// indentation, ~, a quoted string over two lines, CRLF line breaks) stay
// exactly as they were.
func TestEditKeepsTheRestByteForByte(t *testing.T) {
	const (
		head  = "apiVersion:   v1\nclusters: ~\npreferences: {  }\nusers:\n"
		other = "    -   name: other\n        user: {token: \"a\n          b\"}\n"
		user  = "    -   name: u\n        user:\n"
		exec  = "            exec:\n                command: x\n"
		tail  = "            # after exec\n\n    -   name: last   # spaced\ncontexts: []\n"
		want  = "            exec:\n                command: x\n                installHint: h\n                interactiveMode: Never\n                provideClusterInfo: false\n"
	)
	for _, tc := range []struct{ before, eol string }{
		{head + other + user, "\n"},
		// (The parser counts a line too many for a line break inside
		// quotes in a CRLF file, so the whole document would be printed.)
		{head + user, "\r\n"},
	} {
		crlf := func(s string) string { return strings.ReplaceAll(s, "\n", tc.eol) }
		out, err := editKubeconfig([]byte(crlf(tc.before+exec+tail)), "u", execEdit{installHint: "h", interactiveMode: "Never"})
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != crlf(tc.before+want+tail) {
			t.Errorf("line break %q: got\n%s\nwant\n%s", tc.eol, out, crlf(tc.before+want+tail))
		}
	}
}

func TestEditKubeconfigLayouts(t *testing.T) {
	const head = "users:\n- name: u\n  user:\n    exec:\n"
	for _, tc := range []struct {
		name, in string
		edit     execEdit
		want     string
	}{
		{
			// The printer writes the block differently ("command: x"), so
			// the whole document is printed from the tree.
			name: "exec block the printer lays out differently", in: "a: 1\n" + head + "      command:   x\n",
			edit: execEdit{installHint: "h", interactiveMode: "Never"},
			want: "a: 1\n" + head + "      command: x\n      installHint: h\n      interactiveMode: Never\n      provideClusterInfo: false\n",
		},
		{
			name: "indented env emptied", in: head + "      env:\n        - name: DEVICE_LOGIN_CLIENT_SECRET\n          value: old\n      zz: 1\n",
			edit: execEdit{installHint: "h", interactiveMode: "Never"},
			want: head + "      env: []\n      installHint: h\n      interactiveMode: Never\n      provideClusterInfo: false\n      zz: 1\n",
		},
		{
			name: "indented env gets the secret", in: head + "      env:\n        - name: A\n          value: b\n",
			edit: execEdit{installHint: "h", interactiveMode: "Never", secret: "s"},
			want: head + "      env:\n        - name: A\n          value: b\n        - name: DEVICE_LOGIN_CLIENT_SECRET\n          value: s\n      installHint: h\n      interactiveMode: Never\n      provideClusterInfo: false\n",
		},
		{
			name: "flow env list", in: head + "      env: [{name: A, value: b}, {name: DEVICE_LOGIN_CLIENT_SECRET, value: old}]\n",
			edit: execEdit{installHint: "two\nlines\n", interactiveMode: "Never", secret: "new: s"},
			want: head + "      env: [{name: A, value: b}, {name: DEVICE_LOGIN_CLIENT_SECRET, value: \"new: s\"}]\n      installHint: |\n        two\n        lines\n      interactiveMode: Never\n      provideClusterInfo: false\n",
		},
		{
			name: "comments of a replaced entry kept", in: head + "      # the mode\n      interactiveMode: Always # was\n",
			edit: execEdit{installHint: "h", interactiveMode: "Never"},
			want: head + "      installHint: h\n      # the mode\n      interactiveMode: Never # was\n      provideClusterInfo: false\n",
		},
		{
			name: "YAML directive", in: "%YAML 1.1\n---\n" + head + "      command: x\n",
			edit: execEdit{installHint: "h", interactiveMode: "Never"},
			want: "%YAML 1.1\n---\n" + head + "      command: x\n      installHint: h\n      interactiveMode: Never\n      provideClusterInfo: false\n",
		},
		{
			name: "anchored exec", in: head[:len(head)-1] + " &e\n      command: x\n- name: v\n  user:\n    exec: *e\n",
			edit: execEdit{installHint: "h", interactiveMode: "Never"},
			want: head[:len(head)-1] + " &e\n      command: x\n      installHint: h\n      interactiveMode: Never\n      provideClusterInfo: false\n- name: v\n  user:\n    exec: *e\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := editKubeconfig([]byte(tc.in), "u", tc.edit)
			if err != nil || string(out) != tc.want {
				t.Errorf("%v; got\n%s\nwant\n%s", err, out, tc.want)
			}
		})
	}
}

// TestEditedValuesReadBack: whatever the values hold, kubectl's YAML
// reader gets them back exactly, in a block and in a flow exec mapping.
func TestEditedValuesReadBack(t *testing.T) {
	values := []string{
		"", " ", "Never", "a b", "123", "1e3", "0x1F", "0o17", "1_000", "2006-01-02", ".inf", "yes", "No", "ON", "y", "null", "Null", "~", "true",
		"a: b", "a:", "a #b", "#x", "- x", "-", "? x", "Z?é", "[x]", "{x}", "a,b", "'q'", `"q"`, `\`, "%x", "@x", "`x`", "!x", "&x", "*x",
		"|x", ">x", "=", "<<", "é", "\t", "a\tb", "\x1b[2J", "a\u2028b", "\u00a0x", "\n", "\n\n", "two\nlines\n", "no break\nat the end",
		"  lead\n  two\n", "\nafter a blank line\n", "x\n\n", "a\r\nb\n", "\tt\nx\n", "  \n", "a\n  \n", "kubectl-device_login " + InstallHint,
	}
	for _, layout := range []string{"    exec:\n      command: x\n", "    exec: {command: x}\n"} {
		for i, v := range values {
			e := execEdit{installHint: v, interactiveMode: values[(i+1)%len(values)], provideClusterInfo: i%2 == 0, secret: values[(i+2)%len(values)]}
			out, err := editKubeconfig([]byte("users:\n- name: u\n  user:\n"+layout), "u", e)
			if err != nil {
				t.Fatalf("%q: %v", v, err)
			}
			var cfg kubeconfigJSON
			if err := yaml.Unmarshal(out, &cfg); err != nil || len(cfg.Users) != 1 || cfg.Users[0].User.Exec == nil {
				t.Fatalf("%q: kubectl's reader: %v\n%s", v, err, out)
			}
			x := cfg.Users[0].User.Exec
			wantEnv := []envJSON{{plugin.ClientSecretEnv, e.secret}}
			if e.secret == "" {
				wantEnv = nil
			}
			if x.InstallHint != e.installHint || x.InteractiveMode != e.interactiveMode || x.ProvideClusterInfo != e.provideClusterInfo ||
				len(x.Env) != len(wantEnv) || len(wantEnv) == 1 && x.Env[0] != wantEnv[0] {
				t.Errorf("%q, %q, %q read back as %q, %q, %q\n%s", e.installHint, e.interactiveMode, e.secret, x.InstallHint, x.InteractiveMode, x.Env, out)
			}
		}
	}
}
