package setup

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/devicelogin/kubectl-device-login/plugin"
)

// The scopes and token kind every device-flow conversion starts with.
var base = []string{"--scope=openid", "--scope=offline_access", "--token=id_token"}

func with(more ...string) []string { return append(slices.Clone(base), more...) }

// TestConvertKubelogin has a row for every flag of the conversion table,
// given as --flag=value; each value flag is also given as "--flag value"
// and must convert the same way.
func TestConvertKubelogin(t *testing.T) {
	for _, tc := range []struct {
		flag, value string
		want        []string // our flags; nil means base
		secret      string
		dropped     string // substring of the report, "" for none
	}{
		{flag: "oidc-issuer-url", value: "https://auth.example.com", want: with("--issuer-url=https://auth.example.com")},
		{flag: "oidc-client-id", value: "kubectl", want: with("--client-id=kubectl")},
		{flag: "oidc-client-secret", value: "s3cret,with=odd\"chars", secret: "s3cret,with=odd\"chars"},
		{flag: "oidc-extra-scope", value: "email, groups,openid", want: []string{"--scope=openid", "--scope=offline_access", "--scope=email", "--scope=groups", "--token=id_token"}},
		{flag: "oidc-extra-scope", value: `"a,b`, dropped: "--oidc-extra-scope (not a comma-separated list)"},
		{flag: "oidc-auth-request-extra-params", value: "a=b,c=d", want: with("--extra-param=a=b", "--extra-param=c=d")},
		{flag: "oidc-auth-request-extra-params", value: "audience=a,b", want: with("--extra-param=audience=a,b")},
		{flag: "oidc-auth-request-extra-params", value: `"x=1,2",y=3`, want: with("--extra-param=x=1,2", "--extra-param=y=3")},
		{flag: "oidc-auth-request-extra-params", value: "novalue", dropped: "not a comma-separated list of name=value"},
		{flag: "oidc-use-access-token", want: []string{"--scope=openid", "--scope=offline_access", "--token=access_token"}},
		{flag: "oidc-use-access-token", value: "false"},
		{flag: "certificate-authority", value: "/etc/ca.pem", want: with("--certificate-authority=/etc/ca.pem")},
		{flag: "certificate-authority-data", value: "TFMwdExTMUNSVWRKVGc9PQ==", want: with("--certificate-authority-data=TFMwdExTMUNSVWRKVGc9PQ==")},
		{flag: "insecure-skip-tls-verify", want: with("--insecure-skip-tls-verify")},
		{flag: "insecure-skip-tls-verify", value: "false"},
		{flag: "insecure-skip-tls-verify", value: "maybe", dropped: "--insecure-skip-tls-verify (not a boolean)"},
		{flag: "token-cache-storage", value: "keyring", want: with("--token-cache=keyring")},
		{flag: "token-cache-storage", value: "disk", want: with("--token-cache=disk")},
		{flag: "token-cache-storage", value: "auto", dropped: "--token-cache-storage (sessions are kept on disk"},
		{flag: "force-keyring", want: with("--token-cache=keyring")},
		{flag: "no-keyring", want: with("--token-cache=disk")},
		{flag: "grant-type", value: "device-code", want: with("--grant-type=device-code")},
		{flag: "grant-type", value: "client-credentials", want: []string{"--scope=openid", "--token=id_token", "--grant-type=client-credentials"}},
		{flag: "grant-type", value: "auto", dropped: "--grant-type (this plugin signs in with the device flow"},
		{flag: "grant-type", value: "authcode", dropped: "--grant-type ("},
		{flag: "grant-type", value: "authcode-keyboard", dropped: "--grant-type ("},
		{flag: "grant-type", value: "password", dropped: "--grant-type ("},
		{flag: "oidc-use-pkce", want: with("--pkce=always")},
		{flag: "oidc-pkce-method", value: "S256", want: with("--pkce=always")},
		{flag: "oidc-pkce-method", value: "no", want: with("--pkce=never")},
		{flag: "oidc-pkce-method", value: "auto"},
		{flag: "oidc-pkce-method", value: "plain", dropped: "--oidc-pkce-method (not a PKCE method"},
		{flag: "token-cache-dir", value: "/tmp/x", dropped: "--token-cache-dir (sessions are kept in this plugin's own cache)"},
		{flag: "listen-address", value: "127.0.0.1:8000", dropped: "--listen-address (a device login needs no local redirect server)"},
		{flag: "oidc-redirect-url", value: "http://localhost:8000", dropped: "--oidc-redirect-url (a device login needs no redirect)"},
		{flag: "oidc-redirect-url-hostname", value: "localhost", dropped: "--oidc-redirect-url-hostname ("},
		{flag: "skip-open-browser", dropped: "--skip-open-browser (no browser"},
		{flag: "browser-command", value: "firefox", dropped: "--browser-command (no browser"},
		{flag: "open-url-after-authentication", value: "https://x", dropped: "--open-url-after-authentication ("},
		{flag: "authentication-timeout-sec", value: "60", dropped: "--authentication-timeout-sec ("},
		{flag: "local-server-cert", value: "c.pem", dropped: "--local-server-cert (a device login needs no local server)"},
		{flag: "local-server-key", value: "k.pem", dropped: "--local-server-key ("},
		{flag: "tls-renegotiation-once", dropped: "--tls-renegotiation-once (TLS renegotiation"},
		{flag: "tls-renegotiation-freely", dropped: "--tls-renegotiation-freely ("},
		{flag: "username", value: "alice", dropped: "--username (passwords are never handled"},
		{flag: "password", value: "pw", dropped: "--password (passwords are never handled"},
		{flag: "force-refresh", dropped: "--force-refresh (use 'kubectl device-login login --force' instead)"},
		{flag: "v", value: "1", dropped: "--v (use -v"},
		{flag: "token-exchange-resource", value: "x", dropped: "--token-exchange-resource (unknown to this conversion)"},
	} {
		forms := [][]string{{"--" + tc.flag}}
		if tc.value != "" {
			forms = [][]string{{"--" + tc.flag + "=" + tc.value}}
			if kubeloginFlags()[tc.flag].takesValue {
				forms = append(forms, []string{"--" + tc.flag, tc.value})
			}
		}
		want := tc.want
		if want == nil {
			want = base
		}
		for _, args := range forms {
			c := convertKubelogin(args)
			if got := c.args(); !slices.Equal(got, want) {
				t.Errorf("%q: got %q, want %q", args, got, want)
			}
			if c.secret != tc.secret {
				t.Errorf("%q: secret %q, want %q", args, c.secret, tc.secret)
			}
			report := strings.Join(c.dropped, "\n")
			if tc.dropped == "" && report != "" || !strings.Contains(report, tc.dropped) {
				t.Errorf("%q: not carried over %q, want %q", args, report, tc.dropped)
			}
		}
	}
}

// TestConvertKubeloginTableIsCovered: every flag of the table is a row of
// TestConvertKubelogin (kept in step by hand, checked here).
func TestConvertKubeloginTableIsCovered(t *testing.T) {
	src := testSource(t, "kubelogin_test.go")
	var missing []string
	for name := range kubeloginFlags() {
		if !strings.Contains(src, `{flag: "`+name+`"`) {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("flags without a row: %v", missing)
	}
}

func TestConvertKubeloginCombined(t *testing.T) {
	c := convertKubelogin([]string{
		"--oidc-issuer-url", "https://auth.example.com", "--oidc-client-id=k",
		"--oidc-auth-request-extra-params=a=1,b=2", "--oidc-auth-request-extra-params", "a=3",
		"--oidc-pkce-method=no", "--oidc-use-pkce", // use-pkce wins, as in kubelogin
		"--grant-type=device-code", "--grant-type=authcode", // the last one counts
		"stray",
	})
	want := with("--issuer-url=https://auth.example.com", "--client-id=k", "--extra-param=a=3", "--extra-param=b=2", "--pkce=always")
	if got := c.args(); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if r := strings.Join(c.dropped, "; "); !strings.Contains(r, "--grant-type (") || !strings.Contains(r, "stray (an argument, not a flag)") {
		t.Errorf("dropped %q", r)
	}
}

func TestKubeloginArgs(t *testing.T) {
	for _, tc := range []struct {
		command string
		args    []string
		want    []string // nil: not kubelogin's get-token
	}{
		{"kubectl", []string{"oidc-login", "get-token", "--x"}, []string{"--x"}},
		{"/usr/local/bin/kubectl", []string{"oidc-login", "get-token"}, []string{}},
		{"kubectl-oidc_login", []string{"get-token", "--x"}, []string{"--x"}},
		{`kubectl-oidc-login.exe`, []string{"get-token"}, []string{}},
		{"kubectl", []string{"oidc-login", "setup"}, nil},
		{"kubectl-device_login", []string{"get-token"}, nil},
	} {
		got, ok := kubeloginArgs(tc.command, tc.args)
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("%s %q: %q %t", tc.command, tc.args, got, ok)
		}
	}
}

func TestUnreadableNamesThePlaceNotTheValue(t *testing.T) {
	u := func(name string, env []envJSON) userJSON {
		var x userJSON
		x.Name, x.User.Exec = name, &execJSON{Env: env}
		return x
	}
	for _, tc := range []struct {
		u      userJSON
		args   []string
		want   string
		hidden string
	}{
		{u("ok", nil), []string{"--oidc-issuer-url=https://a"}, "", ""},
		{u("x\ntouch PWNED\n#", nil), nil, `the user name "xtouch PWNED#" holds control`, "\n"},
		{u("ok", nil), []string{"--oidc-client-secret=s\x1b]52;c;SGk=\a"}, `argument 1 ("--oidc-client-secret")`, "SGk"},
		{u("ok", nil), []string{"--oidc-client-secret", "s\x1b[2K"}, `argument 2 ("--oidc-client-secret")`, "\x1b"},
		{u("ok", []envJSON{{"TOKEN", "v\u202e"}}), nil, `environment variable "TOKEN"`, "\u202e"},
		{u("ok\u200b", nil), nil, "user name", "\u200b"},
	} {
		got := unreadable(tc.u, tc.args)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) || tc.hidden != "" && strings.Contains(got, tc.hidden) {
			t.Errorf("%q %q: %q, want %q without %q", tc.u.Name, tc.args, got, tc.want, tc.hidden)
		}
	}
}

func TestEntryKeepsTheSecretOutOfTheArguments(t *testing.T) {
	so := Options{User: "u", Login: plugin.Options{ClientSecret: "s3cret"}, Args: []string{"--issuer-url=https://a", "--client-secret=s3cret", "--client-id=c"}}
	e, err := so.entry()
	if err != nil || e.secret != "s3cret" || !slices.Equal(e.args, []string{"get-token", "--issuer-url=https://a", "--client-id=c"}) {
		t.Errorf("%+v %v", e, err)
	}
	so.Args = append(so.Args, "--cache-dir=/tmp/\x1b[1Ax")
	if _, err := so.entry(); err == nil || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("a flag with an escape sequence: %v", err)
	}
}
