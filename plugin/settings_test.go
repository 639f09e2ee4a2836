package plugin

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		got, err := ExpandHome("--certificate-authority", in)
		if err != nil || got != want {
			t.Errorf("ExpandHome(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	t.Setenv("HOME", "")
	_, err := ExpandHome("--cache-dir", "~/sessions")
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
