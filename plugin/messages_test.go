package plugin_test

// What a person reads when something is wrong, and the certificate
// settings kubeconfigs carry, through the built binary: private CAs given
// as data, as files, repeated and combined; ~ in file flags; certificates
// that are not trusted or are for another name; an issuer whose name is
// not found, that refuses connections or never answers; the line
// kubectl's re-runs print; answers that will not change on retry; empty
// flag values; an open cache directory; and what logout leaves behind.
//
// Providers are the real ones (zitadel's op in process, npm oidc-provider)
// serving HTTPS with a CA made here. A small httptest server stands in
// only where no real provider can be made to answer that way (HTTP 501
// and 503 from the token endpoint), and a bare listener where nothing
// should answer at all; each says so.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// testCA is a throwaway certificate authority with a name of its own, so
// that a message can be checked for naming it.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Example Org"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// data is the CA as a kubeconfig's certificate-authority-data holds it.
func (ca *testCA) data() string { return base64.StdEncoding.EncodeToString(ca.pem) }

// file writes the CA's PEM into dir and returns its path.
func (ca *testCA) file(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ca-"+ca.cert.Subject.CommonName+".pem")
	if err := os.WriteFile(path, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serving issues a serving certificate for hosts (names or IP addresses)
// and writes it and its key into a new directory.
func (ca *testCA) serving(t testing.TB, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// httpsProvider starts a provider that serves HTTPS with a certificate
// from ca for hosts, approving every sign-in at once.
func httpsProvider(t testing.TB, start func(testing.TB, providertest.Options) providertest.Provider, ca *testCA, hosts ...string) providertest.Provider {
	t.Helper()
	certFile, keyFile := ca.serving(t, hosts...)
	return start(t, providertest.Options{AutoApprove: true, CertFile: certFile, KeyFile: keyFile})
}

// goIsms are fragments of Go's own error texts, which say nothing to the
// person reading them.
var goIsms = []string{"dial tcp", "lookup ", "x509:", "tls:", "connect:", "no such host", "context deadline exceeded", "Client.Timeout", "read tcp", "EOF", "i/o timeout"}

func noGoIsms(t testing.TB, stderr string) {
	t.Helper()
	for _, g := range goIsms {
		if strings.Contains(stderr, g) {
			t.Errorf("stderr holds Go's words %q:\n%s", g, stderr)
		}
	}
}

// errorLine is the plugin's final "device-login: ..." line.
func errorLine(t testing.TB, r result) string {
	t.Helper()
	if r.exit == 0 {
		t.Fatalf("succeeded, want a failure\nstderr:\n%s", r.stderr)
	}
	lines := regexp.MustCompile(`(?m)^device-login: .*$`).FindAllString(r.stderr, -1)
	if len(lines) != 1 {
		t.Fatalf("%d error lines, want 1:\n%s", len(lines), r.stderr)
	}
	return lines[0]
}

func TestCertificateAuthorityData(t *testing.T) {
	t.Parallel()
	ours := newTestCA(t, "Example Corp Issuing CA")
	other := newTestCA(t, "Some Other CA")
	dir := t.TempDir()
	ctx := testContext(t, 3*time.Minute)
	for _, pv := range providers {
		t.Run(pv.name, func(t *testing.T) {
			p := httpsProvider(t, pv.start, ours, "127.0.0.1")
			for _, tc := range []struct {
				name  string
				flags []string
			}{
				{"data", []string{"--certificate-authority-data=" + ours.data()}},
				// Repeated: the CA that signed the provider's
				// certificate comes second.
				{"repeated", []string{"--certificate-authority-data=" + other.data(), "--certificate-authority-data=" + ours.data()}},
				// Combined with the file flag, either way round.
				{"data and file", []string{"--certificate-authority=" + other.file(t, dir), "--certificate-authority-data=" + ours.data()}},
				{"file and data", []string{"--certificate-authority=" + ours.file(t, dir), "--certificate-authority-data=" + other.data()}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					s := newSession(t, p, tc.flags...)
					r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), env: []string{nonInteractive}})
					r.credential(t)
					s.entry(t)
				})
			}
			// The other CA alone does not make the provider trusted:
			// the cases above passed because of the right CA.
			s := newSession(t, p, "--certificate-authority-data="+other.data())
			r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), env: []string{nonInteractive}})
			if line := errorLine(t, r); !strings.Contains(line, "is not trusted") {
				t.Errorf("with another CA: %s", line)
			}
		})
	}
}

func TestCertificateAuthorityDataThatCannotBeUsed(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	// Refused before any request: the issuer needs no provider.
	base := []string{"get-token", "--issuer-url=https://127.0.0.1:1", "--client-id=kubectl", "--cache-dir=" + filepath.Join(t.TempDir(), "cache"), "--device-login=always"}
	ca := newTestCA(t, "Example Corp Issuing CA")
	for _, tc := range []struct {
		name, value, want string
	}{
		{"not base64", "this is not base64!", "device-login: --certificate-authority-data (number 1) is not base64; give the certificate as the kubeconfig's certificate-authority-data holds it (base64 of the PEM file)"},
		{"PEM text instead of base64", string(ca.pem), "device-login: --certificate-authority-data (number 1) holds PEM text, not its base64; give base64 of the PEM file (base64 -w0 FILE), as a kubeconfig's certificate-authority-data holds it, or the file itself with --certificate-authority=FILE"},
		{"base64 of something else", base64.StdEncoding.EncodeToString([]byte("hello, world")), "device-login: --certificate-authority-data (number 1) holds no PEM certificate once base64-decoded; give base64 of the CA's PEM file, as a kubeconfig's certificate-authority-data holds it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runPlugin(t, ctx, invocation{args: append(base, "--certificate-authority-data="+tc.value), env: []string{nonInteractive}})
			if line := errorLine(t, r); line != tc.want {
				t.Errorf("got  %s\nwant %s", line, tc.want)
			}
			if r.exit != 1 || r.stdout != "" {
				t.Errorf("exit %d, stdout %q", r.exit, r.stdout)
			}
		})
	}
}

func TestTildeInFileFlags(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	ctx := testContext(t, 2*time.Minute)
	env := []string{"HOME=" + home, nonInteractive}
	ca := newTestCA(t, "Example Corp Issuing CA")
	if err := os.WriteFile(filepath.Join(home, "ca.pem"), ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("certificate-authority and cache-dir", func(t *testing.T) {
		p := httpsProvider(t, providertest.StartZitadel, ca, "127.0.0.1")
		args := []string{"get-token", "--issuer-url=" + p.Issuer(), "--client-id=" + p.ClientID(),
			"--certificate-authority=~/ca.pem", "--cache-dir=~/sessions", "--device-login=always"}
		runPlugin(t, ctx, invocation{args: args, env: env}).credential(t)
		s := &session{p: p, cacheDir: filepath.Join(home, "sessions")}
		s.entry(t)
		if _, err := os.Stat("~"); err == nil {
			t.Errorf("a directory named ~ was made in the working directory")
		}
		// A cache hit finds the session under ~ too, without a request.
		before := s.counts(t)
		runPlugin(t, ctx, invocation{args: args, env: env}).credential(t)
		if after := s.counts(t); after != before {
			t.Errorf("the second run was not a cache hit: %+v then %+v", before, after)
		}
	})

	t.Run("client-secret-file", func(t *testing.T) {
		// Neither real provider here has a confidential client: the
		// scripted one checks that the secret read from ~/secret is sent.
		const secret = "client-secret-from-home-3b9e"
		if err := os.WriteFile(filepath.Join(home, "secret"), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		srv := confidentialProvider(t, secret)
		r := runPlugin(t, ctx, invocation{args: []string{"get-token", "--issuer-url=" + srv.URL, "--client-id=confidential",
			"--client-secret-file=~/secret", "--cache-dir=~/confidential", "--device-login=always"}, env: env})
		r.credential(t)
		if strings.Contains(r.stderr, secret) {
			t.Errorf("the secret reached stderr")
		}
	})

	t.Run("a missing file names the expanded path", func(t *testing.T) {
		r := runPlugin(t, ctx, invocation{args: []string{"get-token", "--issuer-url=https://127.0.0.1:1", "--client-id=kubectl",
			"--certificate-authority=~/missing.pem", "--cache-dir=~/sessions", "--device-login=always"}, env: env})
		if line := errorLine(t, r); !strings.Contains(line, filepath.Join(home, "missing.pem")) {
			t.Errorf("%s", line)
		}
	})
}

func TestCertificateNotTrustedSaysWhichAndHowToFix(t *testing.T) {
	t.Parallel()
	ours := newTestCA(t, "Example Corp Issuing CA")
	ctx := testContext(t, 2*time.Minute)

	t.Run("CA not given", func(t *testing.T) {
		p := httpsProvider(t, providertest.StartZitadel, ours, "127.0.0.1")
		s := newSession(t, p)
		r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), env: []string{nonInteractive}})
		line := errorLine(t, r)
		host := strings.TrimPrefix(p.Issuer(), "https://")
		want := "device-login: cannot reach the provider at " + p.Issuer() + "/.well-known/openid-configuration: the certificate of " + host +
			` is not trusted: it was issued by "CN=Example Corp Issuing CA,O=Example Org", which is not among the trusted authorities;` +
			" if that is your organisation's CA, give it with --certificate-authority=FILE or --certificate-authority-data=BASE64"
		if line != want {
			t.Errorf("got  %s\nwant %s", line, want)
		}
		noGoIsms(t, r.stderr)
	})

	t.Run("certificate for another name", func(t *testing.T) {
		p := httpsProvider(t, providertest.StartZitadel, ours, "auth.example.test")
		s := newSession(t, p, "--certificate-authority="+ours.file(t, t.TempDir()))
		r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), env: []string{nonInteractive}})
		line := errorLine(t, r)
		host := strings.TrimPrefix(p.Issuer(), "https://")
		want := "device-login: cannot reach the provider at " + p.Issuer() + "/.well-known/openid-configuration: the certificate of " + host +
			" is for auth.example.test, not for 127.0.0.1; use the name the certificate is for in --issuer-url"
		if line != want {
			t.Errorf("got  %s\nwant %s", line, want)
		}
		noGoIsms(t, r.stderr)
	})
}

func TestUnreachableIssuerInWords(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	// A listener that accepts and never answers: no provider can be
	// made to do that.
	sink := newTCPSink(t, false)
	closed := closedPort(t)
	// A real provider serving plain http, asked for https.
	plainHTTP := "https" + strings.TrimPrefix(providertest.StartZitadel(t, providertest.Options{}).Issuer(), "http")
	noProxy := []string{"HTTPS_PROXY=", "https_proxy=", "NO_PROXY=", "no_proxy="}
	for _, tc := range []struct {
		name, issuer string
		flags, env   []string
		want         string
		within       time.Duration
	}{
		{"name not found", "https://issuer.invalid", nil, noProxy,
			"device-login: cannot reach the provider at https://issuer.invalid/.well-known/openid-configuration: the name issuer.invalid was not found (DNS); check --issuer-url", 10 * time.Second},
		{"connection refused", "https" + strings.TrimPrefix(closed, "http"), nil, nil,
			"device-login: cannot reach the provider at https" + strings.TrimPrefix(closed, "http") + "/.well-known/openid-configuration: the connection to " + strings.TrimPrefix(closed, "http://") +
				" was refused: nothing listens there; check --issuer-url and that the provider is running", 5 * time.Second},
		{"timed out", "https" + strings.TrimPrefix(sink.URL(), "http"), []string{"--request-timeout=1s"}, nil,
			"device-login: cannot reach the provider at https" + strings.TrimPrefix(sink.URL(), "http") + "/.well-known/openid-configuration: " + strings.TrimPrefix(sink.URL(), "http://") +
				" did not answer in time; check your network and proxy settings, or raise --request-timeout", 5 * time.Second},
		{"plain http", plainHTTP, nil, nil,
			"device-login: cannot reach the provider at " + plainHTTP + "/.well-known/openid-configuration: " + strings.TrimPrefix(plainHTTP, "https://") +
				" did not answer in TLS: something there speaks plain http or another protocol; check the scheme and port in --issuer-url", 5 * time.Second},
		{"proxy refused", "https://issuer.example.test", nil, []string{"HTTPS_PROXY=" + closed, "https_proxy=", "NO_PROXY=", "no_proxy="},
			"device-login: cannot reach the provider at https://issuer.example.test/.well-known/openid-configuration: the proxy " + strings.TrimPrefix(closed, "http://") +
				", through which issuer.example.test is asked, cannot be reached (connection refused); check HTTPS_PROXY, HTTP_PROXY and NO_PROXY in the environment", 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"get-token", "--issuer-url=" + tc.issuer, "--client-id=kubectl", "--cache-dir=" + filepath.Join(t.TempDir(), "cache"), "--device-login=always"}, tc.flags...)
			r := runPlugin(t, ctx, invocation{args: args, env: append(tc.env, nonInteractive)})
			if line := errorLine(t, r); line != tc.want {
				t.Errorf("got  %s\nwant %s", line, tc.want)
			}
			noGoIsms(t, r.stderr)
			if r.took > tc.within {
				t.Errorf("took %s, want under %s", r.took, tc.within)
			}
			t.Logf("%s after %s", tc.name, r.took.Round(time.Millisecond))
		})
	}
}

func TestRememberedFailureNamesTheLoginCommandOnce(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	for _, tc := range []struct {
		name, issuer, retry string
		flags               []string
	}{
		// The failure itself says to run the login command.
		{"no session", "https://auth.example.com", "run that command", []string{"--device-login=never"}},
		// The failure does not: the repeat says it, once.
		{"provider down", "https" + strings.TrimPrefix(closedPort(t), "http"), "run: kubectl device-login login", []string{"--device-login=always"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			args := append([]string{"get-token", "--issuer-url=" + tc.issuer, "--client-id=kubectl", "--cache-dir=" + dir}, tc.flags...)
			login := "kubectl device-login login --issuer-url=" + tc.issuer + " --client-id=kubectl --cache-dir=" + dir
			first := errorLine(t, runPlugin(t, ctx, invocation{args: args, env: []string{nonInteractive}}))
			// kubectl runs the plugin again at once: the same parent
			// (this test), within --remember-failure.
			again := errorLine(t, runPlugin(t, ctx, invocation{args: args, env: []string{nonInteractive}}))
			if n := strings.Count(again, login); n != 1 {
				t.Errorf("the re-run's line names the login command %d times, want once:\n%s", n, again)
			}
			if !strings.HasPrefix(again, first+" (this failed just now and is not retried for 30 s; to retry now, ") || !strings.Contains(again, tc.retry) {
				t.Errorf("the re-run does not repeat the failure and say how to retry now:\nfirst: %s\nagain: %s", first, again)
			}
			t.Logf("first %d characters, re-run %d: %s", len(first), len(again), again)
		})
	}

	t.Run("through kubectl", func(t *testing.T) {
		bin := kubectlPath(t)
		// No provider is needed: the plugin fails before asking one.
		api := providertest.NewAPIServer("https://auth.example.com", nil)
		defer api.Close()
		dir := filepath.Join(t.TempDir(), "cache")
		kc := kubeconfigFor(t, api, []string{"get-token", "--issuer-url=https://auth.example.com", "--client-id=kubectl", "--cache-dir=" + dir, "--device-login=never"})
		r := kubectl(t, ctx, bin, kc, nil, "get", "pods")
		lines := regexp.MustCompile(`(?m)^device-login: .*$`).FindAllString(r.stderr, -1)
		if len(lines) < 2 {
			t.Fatalf("kubectl ran the plugin %d time(s); the re-runs this test is about did not happen:\n%s", len(lines), r.stderr)
		}
		login := "kubectl device-login login --issuer-url=https://auth.example.com --client-id=kubectl --cache-dir=" + dir
		longest := 0
		for _, l := range lines {
			if n := strings.Count(l, login); n != 1 {
				t.Errorf("a line names the login command %d times:\n%s", n, l)
			}
			longest = max(longest, len(l))
		}
		if !strings.Contains(lines[1], "is not retried for 30 s") {
			t.Errorf("kubectl's re-run did not repeat the remembered failure:\n%s", lines[1])
		}
		if longest > len(lines[0])+90 {
			t.Errorf("a re-run's line is %d characters, %d more than the first", longest, longest-len(lines[0]))
		}
		t.Logf("kubectl ran the plugin %d times; first line %d characters, longest %d (login command %d)", len(lines), len(lines[0]), longest, len(login))
	})
}

func TestAnswersThatWillNotChangeAreNotToBeRetried(t *testing.T) {
	t.Parallel()
	p := providertest.StartZitadel(t, providertest.Options{AutoApprove: true})
	ctx := testContext(t, 2*time.Minute)
	for _, tc := range []struct {
		status          int
		retry, notRetry bool
	}{
		{http.StatusNotImplemented, false, true},
		{http.StatusHTTPVersionNotSupported, false, true},
		{http.StatusServiceUnavailable, true, false},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			s := newSession(t, p)
			runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), env: []string{nonInteractive}}).credential(t)
			e := rewrite(t, s, func(e *cache.Entry) {
				e.IssuedAt = time.Now().Add(-2 * time.Hour)
				e.Expiry = time.Now().Add(-time.Hour)
			})
			// No real provider can be made to answer this: a stand-in
			// token endpoint does.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(tc.status)
				w.Write([]byte("<html>nope</html>"))
			}))
			t.Cleanup(srv.Close)
			r := runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=never", "--token-endpoint="+srv.URL+"/token"), env: []string{nonInteractive}})
			line := errorLine(t, r)
			if got := strings.Contains(line, "try again in a moment"); got != tc.retry {
				t.Errorf("says try again: %v, want %v:\n%s", got, tc.retry, line)
			}
			if got := strings.Contains(line, "will not change by itself"); got != tc.notRetry {
				t.Errorf("says it will not change: %v, want %v:\n%s", got, tc.notRetry, line)
			}
			if after := s.entry(t); after.RefreshToken != e.RefreshToken {
				t.Errorf("the session changed")
			}
			t.Logf("%s", line)
		})
	}
}

func TestEmptyFlagValuesAreRefusedAlike(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	home := t.TempDir()
	// Some old versions used an empty --cache-dir as the default one:
	// keep that away from this machine's real cache.
	env := []string{"HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"), nonInteractive}
	base := []string{"--issuer-url=https://auth.example.com", "--client-id=kubectl", "--cache-dir=" + filepath.Join(home, "cache")}
	for _, tc := range []struct{ cmd, flag string }{
		{"get-token", "--token="},
		{"get-token", "--qr="},
		{"get-token", "--scope="},
		{"get-token", "--cache-dir="},
		{"get-token", "--request-timeout="},
		{"get-token", "--open-browser="},
		{"login", "--qr="},
		{"status", "--cache-dir="},
		{"logout", "--token="},
	} {
		t.Run(tc.cmd+" "+tc.flag, func(t *testing.T) {
			args := []string{tc.cmd}
			switch tc.cmd {
			case "get-token":
				args = append(append(args, base...), "--device-login=never")
			case "login", "logout":
				args = append(args, base...)
			}
			r := runPlugin(t, ctx, invocation{args: append(args, tc.flag), env: env})
			name := strings.TrimSuffix(tc.flag, "=")
			want := "device-login: " + name + " needs a value; leave the flag out to get its default"
			if first, _, _ := strings.Cut(r.stderr, "\n"); first != want || r.exit != 2 || r.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%s", r.exit, r.stdout, r.stderr)
			}
		})
	}
}

func TestOpenCacheDirectoryIsRefusedAlike(t *testing.T) {
	t.Parallel()
	p := providertest.StartZitadel(t, providertest.Options{AutoApprove: true})
	ctx := testContext(t, time.Minute)
	s := newSession(t, p)
	runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), env: []string{nonInteractive}}).credential(t)
	status := []string{"status", "--cache-dir=" + s.cacheDir}

	if err := os.Chmod(s.cacheDir, 0o777); err != nil {
		t.Fatal(err)
	}
	want := "device-login: the cache directory " + s.cacheDir + " can be written by other users (mode 0777); run: chmod 700 " + s.cacheDir
	before := s.counts(t)
	// The session is fresh: this would be a cache hit.
	hit := runPlugin(t, ctx, invocation{args: s.args("get-token"), env: []string{nonInteractive}})
	if line := errorLine(t, hit); line != want || hit.stdout != "" {
		t.Errorf("get-token: %s\nstdout %q\nwant %s", line, hit.stdout, want)
	}
	st := runPlugin(t, ctx, invocation{args: status})
	if line := errorLine(t, st); line != want {
		t.Errorf("status: %s\nwant %s", line, want)
	}
	if after := s.counts(t); after != before {
		t.Errorf("the provider was asked: %+v then %+v", before, after)
	}

	// Readable by others only: made private without a word, on the hit
	// path and in status alike.
	for _, args := range [][]string{s.args("get-token"), status} {
		if err := os.Chmod(s.cacheDir, 0o755); err != nil {
			t.Fatal(err)
		}
		r := runPlugin(t, ctx, invocation{args: args, env: []string{nonInteractive}})
		if r.exit != 0 || r.stderr != "" {
			t.Errorf("%s: exit %d\n%s", args[0], r.exit, r.stderr)
		}
		if fi, err := os.Stat(s.cacheDir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: the directory is %v (%v), want 0700", args[0], fi.Mode().Perm(), err)
		}
	}
	if after := s.counts(t); after != before {
		t.Errorf("the get-token at 0755 was not a cache hit: %+v then %+v", before, after)
	}
}

// leftovers lists what is in dir, or nil when dir is gone.
func leftovers(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// failedRefresh makes the session's token expired and its refresh fail
// (a closed token endpoint), which leaves a failure note and a lock file.
func failedRefresh(t *testing.T, s *session) {
	t.Helper()
	rewrite(t, s, func(e *cache.Entry) {
		e.IssuedAt = time.Now().Add(-2 * time.Hour)
		e.Expiry = time.Now().Add(-time.Hour)
	})
	r := runPlugin(t, testContext(t, time.Minute), invocation{args: s.args("get-token", "--device-login=never", "--token-endpoint="+closedPort(t)+"/token"), env: []string{nonInteractive}})
	errorLine(t, r)
}

func TestLogoutLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	p := providertest.StartZitadel(t, providertest.Options{AutoApprove: true})
	ctx := testContext(t, 2*time.Minute)
	signIn := func(s *session) {
		t.Helper()
		runPlugin(t, ctx, invocation{args: s.args("get-token", "--device-login=always"), env: []string{nonInteractive}}).credential(t)
	}

	t.Run("all", func(t *testing.T) {
		a := newSession(t, p)
		b := newSession(t, p, "--scope=openid", "--scope=offline_access", "--scope=email")
		b.cacheDir, b.flags[2] = a.cacheDir, a.flags[2]
		signIn(a)
		failedRefresh(t, a)
		signIn(b)
		// What a writer killed mid-save leaves.
		if err := os.WriteFile(filepath.Join(a.cacheDir, ".tmp-"+keyID(p.Issuer(), p.ClientID())+"-123456"), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		// A session that never was, only a remembered failure.
		errorLine(t, runPlugin(t, ctx, invocation{args: []string{"get-token", "--issuer-url=https://auth.example.com", "--client-id=kubectl",
			"--cache-dir=" + a.cacheDir, "--device-login=never"}, env: []string{nonInteractive}}))
		t.Logf("before logout --all: %v", leftovers(t, a.cacheDir))
		for _, kind := range []string{".lock", ".failed", ".json"} {
			if !slices.ContainsFunc(leftovers(t, a.cacheDir), func(n string) bool { return strings.HasSuffix(n, kind) }) {
				t.Fatalf("no %s file to clear; the test no longer shows anything", kind)
			}
		}
		r := runPlugin(t, ctx, invocation{args: []string{"logout", "--all", "--cache-dir=" + a.cacheDir}})
		if r.exit != 0 || strings.Count(r.stderr, "Signed out") != 2 {
			t.Fatalf("exit %d\n%s", r.exit, r.stderr)
		}
		if left := leftovers(t, a.cacheDir); left != nil {
			t.Errorf("logout --all left %v", left)
		}
		if _, err := os.Stat(a.cacheDir); err == nil {
			t.Errorf("the emptied cache directory is still there")
		}
	})

	t.Run("all keeps what is not ours", func(t *testing.T) {
		a := newSession(t, p)
		signIn(a)
		mine := filepath.Join(a.cacheDir, "notes.txt")
		if err := os.WriteFile(mine, []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := runPlugin(t, ctx, invocation{args: []string{"logout", "--all", "--cache-dir=" + a.cacheDir}}); r.exit != 0 {
			t.Fatalf("exit %d\n%s", r.exit, r.stderr)
		}
		if left := leftovers(t, a.cacheDir); !slices.Equal(left, []string{"notes.txt"}) {
			t.Errorf("left %v, want only notes.txt", left)
		}
	})

	t.Run("one session", func(t *testing.T) {
		a := newSession(t, p)
		b := newSession(t, p, "--scope=openid", "--scope=offline_access", "--scope=email")
		b.cacheDir, b.flags[2] = a.cacheDir, a.flags[2]
		signIn(a)
		failedRefresh(t, a)
		signIn(b)
		idA := keyID(p.Issuer(), p.ClientID())
		if err := os.WriteFile(filepath.Join(a.cacheDir, ".tmp-"+idA+"-123456"), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{".lock", ".failed", ".json"} {
			if _, err := os.Stat(filepath.Join(a.cacheDir, idA+kind)); err != nil {
				t.Fatalf("no %s file to clear: %v", kind, err)
			}
		}
		if r := runPlugin(t, ctx, invocation{args: a.args("logout")}); r.exit != 0 || !strings.Contains(r.stderr, "Signed out") {
			t.Fatalf("exit %d\n%s", r.exit, r.stderr)
		}
		// A login that never signed in, only failed: logout clears its
		// note and lock too.
		never := []string{"--issuer-url=https://auth.example.com", "--client-id=kubectl", "--cache-dir=" + a.cacheDir}
		errorLine(t, runPlugin(t, ctx, invocation{args: append([]string{"get-token", "--device-login=never"}, never...), env: []string{nonInteractive}}))
		idNever := keyID("https://auth.example.com", "kubectl")
		if _, err := os.Stat(filepath.Join(a.cacheDir, idNever+".failed")); err != nil {
			t.Fatalf("no failure note to clear: %v", err)
		}
		if r := runPlugin(t, ctx, invocation{args: append([]string{"logout"}, never...)}); r.exit != 0 || !strings.Contains(r.stderr, "nothing to do") {
			t.Fatalf("exit %d\n%s", r.exit, r.stderr)
		}
		for _, name := range leftovers(t, a.cacheDir) {
			for _, id := range []string{idA, idNever} {
				if strings.HasPrefix(name, id) || strings.HasPrefix(name, ".tmp-"+id) {
					t.Errorf("logout left %s", name)
				}
			}
		}
		// The other session is untouched and still a hit.
		b.entry(t)
		runPlugin(t, ctx, invocation{args: b.args("get-token", "--device-login=never"), env: []string{nonInteractive}}).credential(t)
	})
}

func TestSetupFromKubeloginCarriesCertificateAuthorityData(t *testing.T) {
	t.Parallel()
	// A kubelogin user of a provider behind a private CA, given as data.
	ca := newTestCA(t, "Example Corp Issuing CA")
	p := httpsProvider(t, providertest.StartZitadel, ca, "127.0.0.1")
	kc := filepath.Join(t.TempDir(), "config")
	set := exec.Command(kubectlPath(t), "--kubeconfig="+kc, "config", "set-credentials", "oidc",
		"--exec-api-version=client.authentication.k8s.io/v1beta1", "--exec-command=kubectl",
		"--exec-arg=oidc-login", "--exec-arg=get-token", "--exec-arg=--oidc-issuer-url="+p.Issuer(),
		"--exec-arg=--oidc-client-id="+p.ClientID(), "--exec-arg=--certificate-authority-data="+ca.data())
	if out, err := set.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	ctx := testContext(t, time.Minute)
	r := runPlugin(t, ctx, invocation{args: []string{"setup", "--from-kubelogin", "--kubeconfig=" + kc}})
	if r.exit != 0 || strings.Contains(r.stderr, "not carried over: --certificate-authority-data") {
		t.Fatalf("exit %d; the CA was not carried over:\n%s", r.exit, r.stderr)
	}
	var args []string
	for _, a := range viewUser(t, kc, "oidc")["args"].([]any) {
		args = append(args, a.(string))
	}
	if !slices.Contains(args, "--certificate-authority-data="+ca.data()) {
		t.Fatalf("converted args %q lack the CA", args)
	}
	// The converted entry signs in: the provider's certificate is trusted.
	args = append(args, "--cache-dir="+filepath.Join(t.TempDir(), "cache"), "--device-login=always")
	runPlugin(t, ctx, invocation{args: args, env: []string{nonInteractive}}).credential(t)
}

func TestPollOutlivesATimedOutRequest(t *testing.T) {
	t.Parallel()
	// A poll that gets no answer within --request-timeout is a passing
	// fault like a 5xx: the device login goes on until the code expires.
	// No real provider can be made to hold one poll: a stand-in does.
	var polls atomic.Int32
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	reply := func(w http.ResponseWriter, status int, v string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(v))
	}
	mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, `{"device_code":"dc-0123456789","user_code":"ABCD-EFGH","verification_uri":"`+srv.URL+`/verify","expires_in":60,"interval":1}`)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		switch polls.Add(1) {
		case 1:
			reply(w, 400, `{"error":"authorization_pending"}`)
		case 2:
			select { // longer than --request-timeout
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			reply(w, 400, `{"error":"authorization_pending"}`)
		default:
			reply(w, 200, `{"access_token":"access-after-a-timeout","token_type":"Bearer","expires_in":3600}`)
		}
	})
	ctx := testContext(t, time.Minute)
	r := runPlugin(t, ctx, invocation{args: []string{"get-token", "--issuer-url=" + srv.URL, "--client-id=kubectl",
		"--device-authorization-endpoint=" + srv.URL + "/device", "--token-endpoint=" + srv.URL + "/token",
		"--cache-dir=" + filepath.Join(t.TempDir(), "cache"), "--device-login=always", "--request-timeout=1s"}, env: []string{nonInteractive}})
	if c := r.credential(t); c.Status.Token != "access-after-a-timeout" {
		t.Errorf("token %q", c.Status.Token)
	}
	if !strings.Contains(r.stderr, "did not answer in time") || !strings.Contains(r.stderr, "retrying, the code stays valid until") {
		t.Errorf("the timed-out poll was not reported as retried:\n%s", r.stderr)
	}
	noGoIsms(t, r.stderr)
}

func TestDeviceAuthorizationTimeoutSaysWhere(t *testing.T) {
	t.Parallel()
	// A device authorization endpoint that never answers (a bare
	// listener): the message names the request, not only the host.
	sink := newTCPSink(t, false)
	ctx := testContext(t, time.Minute)
	r := runPlugin(t, ctx, invocation{args: []string{"get-token", "--issuer-url=" + sink.URL(), "--client-id=kubectl",
		"--device-authorization-endpoint=" + sink.URL() + "/device", "--token-endpoint=" + sink.URL() + "/token",
		"--cache-dir=" + filepath.Join(t.TempDir(), "cache"), "--device-login=always", "--request-timeout=1s"}, env: []string{nonInteractive}})
	want := "device-login: cannot start a device login at " + sink.URL() + "/device: " + strings.TrimPrefix(sink.URL(), "http://") +
		" did not answer in time; check your network and proxy settings, or raise --request-timeout"
	if line := errorLine(t, r); line != want {
		t.Errorf("got  %s\nwant %s", line, want)
	}
	// One timeout for discovery (asked for the revocation endpoint and
	// PKCE), one for the device authorization: not one per question.
	if n := sink.accepted(); n != 2 || r.took > 2800*time.Millisecond {
		t.Errorf("%d connections in %s, want 2 in about 2 s", n, r.took)
	}
}
