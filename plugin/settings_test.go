package plugin

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

func TestExpandHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for in, want := range map[string]string{
		"~":              home,
		"~/":             home,
		"~/ca.pem":       filepath.Join(home, "ca.pem"),
		"~/a/../b/c.pem": filepath.Join(home, "b", "c.pem"),
		"~other/ca.pem":  "~other/ca.pem", // another user's home: left to the person
		"/etc/ca.pem":    "/etc/ca.pem",
		"certs/~/ca.pem": "certs/~/ca.pem",
		"":               "",
	} {
		got, err := expandHome("--certificate-authority", in)
		if err != nil || got != want {
			t.Errorf("expandHome(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	t.Setenv("HOME", "")
	_, err := expandHome("--cache-dir", "~/sessions")
	if err == nil || !strings.HasPrefix(err.Error(), "--cache-dir ~/sessions starts with ~, but the home directory is unknown") || !strings.HasSuffix(err.Error(), "give the full path") {
		t.Errorf("without a home: %v", err)
	}
}

func TestResolveCacheExpandsHomeInEveryFileFlag(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, "secret"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ResolveCache(Options{
		CacheDir:               "~/sessions",
		CertificateAuthorities: []string{"~/ca.pem", "/etc/ssl/other.pem"},
		ClientSecretFile:       "~/secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.CacheDir != filepath.Join(home, "sessions") || !s.CacheDirGiven {
		t.Errorf("cache dir %q (given %v)", s.CacheDir, s.CacheDirGiven)
	}
	if want := []string{filepath.Join(home, "ca.pem"), "/etc/ssl/other.pem"}; strings.Join(s.TLS.CAFiles, " ") != strings.Join(want, " ") {
		t.Errorf("CA files %q, want %q", s.TLS.CAFiles, want)
	}
	if s.ClientSecret != "s3cret" {
		t.Errorf("the client secret was not read from ~/secret")
	}
}

const testPEM = "-----BEGIN CERTIFICATE-----\nMIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjASMRAw\n-----END CERTIFICATE-----\n"

func TestResolveCacheCertificateAuthorityData(t *testing.T) {
	one := base64.StdEncoding.EncodeToString([]byte(testPEM))
	two := base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(testPEM, "MIIB", "MIIC")))
	// base64 as `base64` prints it: wrapped at 76 columns, newline at
	// the end.
	var wrapped strings.Builder
	for i := 0; i < len(one); i += 76 {
		wrapped.WriteString(one[i:min(i+76, len(one))] + "\n")
	}
	s, err := ResolveCache(Options{CertificateAuthorityData: []string{one, "  " + two + "\n", wrapped.String()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.TLS.CAData) != 3 || !bytes.Equal(s.TLS.CAData[0], []byte(testPEM)) || !bytes.Contains(s.TLS.CAData[1], []byte("MIIC")) || !bytes.Equal(s.TLS.CAData[2], []byte(testPEM)) {
		t.Errorf("CA data %q", s.TLS.CAData)
	}

	for _, tc := range []struct{ value, want string }{
		{"not base64!", "--certificate-authority-data (number 2) is not base64; "},
		{testPEM, "--certificate-authority-data (number 2) holds PEM text, not its base64; "},
	} {
		_, err := ResolveCache(Options{CertificateAuthorityData: []string{one, tc.value}})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q…", tc.value, err, tc.want)
		}
	}
}

func TestResolveChecksEverySetting(t *testing.T) {
	base := Options{IssuerURL: "https://auth.example.com", ClientID: "kubectl", CacheDir: "/nonexistent/cache"}
	for name, tc := range map[string]struct {
		change func(o *Options)
		want   string // in the error; "" for accepted
	}{
		"defaults":                      {func(o *Options) {}, ""},
		"no issuer":                     {func(o *Options) { o.IssuerURL = "" }, "--issuer-url is required"},
		"http elsewhere":                {func(o *Options) { o.IssuerURL = "http://auth.example.com" }, "plain http"},
		"http on loopback":              {func(o *Options) { o.IssuerURL = "http://127.0.0.1:8080" }, ""},
		"issuer with a query":           {func(o *Options) { o.IssuerURL = "https://auth.example.com/?a=b" }, "must not have a query"},
		"issuer with a user":            {func(o *Options) { o.IssuerURL = "https://me:pw@auth.example.com" }, "user name or password"},
		"issuer with bidi":              {func(o *Options) { o.IssuerURL = "https://auth.example.com/\u202e" }, "control or invisible"},
		"no client":                     {func(o *Options) { o.ClientID = "" }, "--client-id is required"},
		"client with escapes":           {func(o *Options) { o.ClientID = "a\x1b[2Jb" }, "control or invisible"},
		"scope with a space":            {func(o *Options) { o.Scopes = []string{"openid profile"} }, "not a valid scope"},
		"scope with a quote":            {func(o *Options) { o.Scopes = []string{`a"b`} }, "not a valid scope"},
		"scope with an escape":          {func(o *Options) { o.Scopes = []string{"\x1b[31m"} }, "not a valid scope"},
		"scope of printable ASCII":      {func(o *Options) { o.Scopes = []string{"https://api.example.com/read!#$%&'()*+,-./:;<=>?@[]^_`{|}~"} }, ""},
		"extra param without =":         {func(o *Options) { o.ExtraParams = []string{"audience"} }, "must look like name=value"},
		"extra param setting scope":     {func(o *Options) { o.ExtraParams = []string{"scope=admin"} }, "cannot set scope"},
		"extra param with a control":    {func(o *Options) { o.ExtraParams = []string{"a=\x07"} }, "control or invisible"},
		"token kind":                    {func(o *Options) { o.Token = "refresh_token" }, "--token must be access_token or id_token"},
		"device login":                  {func(o *Options) { o.DeviceLogin = "sometimes" }, "--device-login must be auto, always or never"},
		"token cache":                   {func(o *Options) { o.TokenCache = "memory" }, "--token-cache must be disk, keyring or none"},
		"grant type":                    {func(o *Options) { o.GrantType = "password" }, "--grant-type must be"},
		"negative margin":               {func(o *Options) { o.RefreshMargin = -time.Second }, "cannot be negative"},
		"client credentials, no secret": {func(o *Options) { o.GrantType = GrantClientCredentials }, "needs the client secret"},
		"endpoint over http":            {func(o *Options) { o.TokenEndpoint = "http://auth.example.com/token" }, "plain http"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(ClientSecretEnv, "")
			o := base
			tc.change(&o)
			s, err := Resolve(o)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			case err != nil && terminal.Sanitize(err.Error(), 10000) != err.Error():
				t.Fatalf("the error carries control characters: %q", err)
			case err == nil && (s.Key.Issuer == "" || s.RefreshMargin <= 0 || s.RequestTimeout <= 0 || s.LockTimeout <= 0):
				t.Fatalf("defaults not filled: %+v", s)
			}
		})
	}
}

func TestDefaultScopesOnlyForTheDeviceFlow(t *testing.T) {
	t.Setenv(ClientSecretEnv, "s")
	for grant, want := range map[string][]string{GrantDeviceCode: {"offline_access", "openid"}, GrantClientCredentials: {}} {
		s, err := Resolve(Options{IssuerURL: "https://a.example", ClientID: "c", GrantType: grant})
		if err != nil || !slices.Equal(s.Key.Scopes, want) {
			t.Errorf("%s: scopes %v, %v; want %v", grant, s.Key.Scopes, err, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain-word_1.2:3@x,y+z%": "plain-word_1.2:3@x,y+z%",
		"":                        "''",
		"two words":               "'two words'",
		"it's":                    `'it'\''s'`,
		"$(touch x)":              "'$(touch x)'",
		"-h":                      "-h",
		"a\nb":                    "'a\nb'",
		"--scope=openid profile":  "'--scope=openid profile'",
	} {
		got := ShellQuote(in)
		if got != want {
			t.Errorf("ShellQuote(%q) = %q, want %q", in, got, want)
			continue
		}
		// What sh makes of it is the original word.
		out, err := exec.Command("sh", "-c", `printf %s `+got).Output()
		if err != nil || string(out) != in {
			t.Errorf("sh read %q back as %q (%v)", got, out, err)
		}
	}
}

func TestLoginCommandCarriesTheIdentityButNoSecret(t *testing.T) {
	t.Setenv(ClientSecretEnv, "")
	s, err := Resolve(Options{IssuerURL: "https://a.example/", ClientID: "c", ClientSecret: "s3cret", Scopes: []string{"openid", "groups"},
		ExtraParams: []string{"audience=k8s"}, Token: TokenID, CacheDir: "/tmp/my cache/", TokenCache: TokenCacheKeyring})
	if err != nil {
		t.Fatal(err)
	}
	got := s.loginCommand()
	want := "kubectl device-login login --issuer-url=https://a.example --client-id=c --scope=groups --scope=openid --extra-param=audience=k8s --token=id_token '--cache-dir=/tmp/my cache' --token-cache=keyring"
	if got != want {
		t.Errorf("loginCommand() =\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(got, "s3cret") || fmt.Sprint(s) == "" || strings.Contains(fmt.Sprintf("%v %+v %#v", s, s, s), "s3cret") {
		t.Errorf("the secret shows")
	}
}
