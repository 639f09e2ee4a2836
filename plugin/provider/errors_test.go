package provider

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// goWords are fragments of Go's own error texts that must not reach a
// person.
var goWords = []string{"dial tcp", "lookup ", "x509:", "tls:", "connect:", "no such host", "proxyconnect", "i/o timeout", "EOF"}

// TestNetErrorsInWords: each way a request can get no answer is said in
// words, with what to check. The errors are built as Go's packages build
// them; the black-box tests in package plugin meet most of them for real.
func TestNetErrorsInWords(t *testing.T) {
	leaf := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "auth.example.test"},
		Issuer:      pkix.Name{CommonName: "Example Corp Issuing CA"},
		DNSNames:    []string{"auth.example.test", "login.example.test"},
		IPAddresses: []net.IP{net.ParseIP("10.0.0.7")},
		NotBefore:   time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:    time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	other := &x509.Certificate{DNSNames: []string{"login.example.test", "portal.example.test"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}}
	dial := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, Err: err}
	}
	for _, tc := range []struct {
		name    string
		setting string
		err     error
		want    string
	}{
		{"name not found", "--issuer-url", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "auth.example.test", IsNotFound: true}},
			"the name auth.example.test was not found (DNS); check --issuer-url"},
		{"DNS server failing", "", &net.DNSError{Err: "server misbehaving", Name: "auth.example.test", IsTemporary: true},
			"the name auth.example.test could not be looked up (DNS: server misbehaving); check your network and its DNS server"},
		{"refused", "", dial(os.NewSyscallError("connect", syscall.ECONNREFUSED)),
			"the connection to auth.example.test:8443 was refused: nothing listens there; check the URL and that the provider is running"},
		{"unknown authority", "", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{Cert: leaf}},
			`the certificate of auth.example.test:8443 is not trusted: it was issued by "CN=Example Corp Issuing CA", which is not among the trusted authorities; if that is your organisation's CA, give it with --certificate-authority=FILE or --certificate-authority-data=BASE64`},
		{"another name", "--issuer-url", &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: other, Host: "auth.example.test"}},
			"the certificate of auth.example.test:8443 is for login.example.test, portal.example.test, 10.0.0.7, not for auth.example.test; use the name the certificate is for in --issuer-url"},
		{"no names at all", "", &tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "auth.example.test"}},
			"the certificate of auth.example.test:8443 names no host at all, so it is not valid for auth.example.test; the provider needs a certificate with auth.example.test among its subject alternative names"},
		{"expired", "", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Cert: leaf, Reason: x509.Expired}},
			"the certificate of auth.example.test:8443 is valid from 2020-01-01 00:00:00 to 2021-01-01 00:00:00 UTC, and this machine's clock says 20"},
		{"not a CA", "", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Cert: leaf, Reason: x509.NotAuthorizedToSign}},
			"the certificate of auth.example.test:8443 cannot be used (certificate is not authorized to sign other certificates); check the provider's certificate"},
		{"timed out", "", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded},
			"auth.example.test:8443 did not answer in time; check your network and proxy settings, or raise --request-timeout"},
		{"not TLS", "--issuer-url", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"},
			"auth.example.test:8443 did not answer in TLS: something there speaks plain http or another protocol; check the scheme and port in --issuer-url"},
		{"plain http answer", "--issuer-url", errors.New("http: server gave HTTP response to HTTPS client"),
			"auth.example.test:8443 did not answer in TLS: something there speaks plain http or another protocol; check the scheme and port in --issuer-url"},
		{"proxy refused", "", &net.OpError{Op: "proxyconnect", Net: "tcp", Err: dial(os.NewSyscallError("connect", syscall.ECONNREFUSED))},
			"the proxy 127.0.0.1:1, through which auth.example.test:8443 is asked, cannot be reached (connection refused); check HTTPS_PROXY, HTTP_PROXY and NO_PROXY in the environment"},
		{"proxy name not found", "", &net.OpError{Op: "proxyconnect", Net: "tcp", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "proxy.example.test", IsNotFound: true}}},
			"the proxy proxy.example.test, through which auth.example.test:8443 is asked, cannot be reached (its name was not found); check HTTPS_PROXY, HTTP_PROXY and NO_PROXY in the environment"},
		{"reset", "", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)},
			"the connection to auth.example.test:8443 broke before the answer came; check the URL, and your network and proxy settings"},
		{"closed early", "", io.ErrUnexpectedEOF,
			"the connection to auth.example.test:8443 broke before the answer came; check the URL, and your network and proxy settings"},
		{"unreachable network", "", dial(os.NewSyscallError("connect", syscall.ENETUNREACH)),
			"auth.example.test:8443 cannot be reached from this network; check your network and proxy settings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ne := &netError{URL: "https://auth.example.test:8443/.well-known/openid-configuration", Setting: tc.setting, Err: tc.err}
			got := ne.Error()
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			for _, w := range goWords {
				if strings.Contains(got, w) {
					t.Errorf("%q holds Go's words %q", got, w)
				}
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&httpError{Status: 500}, true},
		{&httpError{Status: 502}, true},
		{&httpError{Status: 503}, true},
		{&httpError{Status: 504}, true},
		{&httpError{Status: 408}, true},
		{&httpError{Status: 425}, true},
		{&httpError{Status: 429}, true},
		{&httpError{Status: 501}, false},
		{&httpError{Status: 505}, false},
		{&httpError{Status: 400}, false},
		{&httpError{Status: 404}, false},
		{&httpError{Status: 302}, false},
		{&OAuthError{Code: "temporarily_unavailable"}, true},
		{&OAuthError{Code: "server_error"}, true},
		{&OAuthError{Code: "invalid_client"}, false},
		{&OAuthError{Code: "unsupported_grant_type"}, false},
		{&netError{Err: &net.DNSError{IsNotFound: true}}, false},
		{&netError{Err: &net.DNSError{IsTemporary: true}}, true},
		{&netError{Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{&netError{Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, false},
		{&badAnswerError{"is not JSON"}, true},
		{fmt.Errorf("could not refresh: %w", &httpError{Status: 501}), false},
		{errors.New("something else"), false},
	} {
		if got := Retryable(tc.err); got != tc.want {
			t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestOAuthErrorShape: only an answer whose error fields are all strings
// (or null) is a well-formed error, error_uri included, though it is not
// used.
func TestOAuthErrorShape(t *testing.T) {
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`{"error":"invalid_grant"}`, true},
		{`{"error":"invalid_grant","error_description":"gone","error_uri":"https://issuer.example/errors"}`, true},
		{`{"error":"invalid_grant","error_uri":null}`, true},
		{`{"error":"invalid_grant","error_uri":5}`, false},
		{`{"error":"invalid_grant","error_description":5}`, false},
		{`{"error":5}`, false},
	} {
		if _, got := oauthErrorIn([]byte(tc.body)); got != tc.want {
			t.Errorf("oauthErrorIn(%s) is well-formed: %t, want %t", tc.body, got, tc.want)
		}
	}
}
