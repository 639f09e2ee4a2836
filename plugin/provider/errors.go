package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// OAuthError is a well-formed error answer (RFC 6749 §5.2): a JSON object
// whose "error" is an error code. Only such an answer says something
// about the grant; anything else is an *httpError, a *netError or a
// *badAnswerError.
type OAuthError struct {
	// Code is the error code, such as invalid_grant; Description is the
	// optional error_description.
	Code, Description string
}

func (e *OAuthError) Error() string {
	s := "the provider answered " + terminal.Sanitize(e.Code, 80)
	if e.Description != "" {
		s += " (" + terminal.Sanitize(e.Description, 300) + ")"
	}
	return s
}

// Retryable tells whether the same request may succeed later: only for
// the codes RFC 6749 reserves for passing trouble.
func (e *OAuthError) Retryable() bool {
	return e.Code == "server_error" || e.Code == "temporarily_unavailable"
}

// httpError is an answer that is neither what was asked for nor a
// well-formed OAuth error: a redirect that was not followed, an HTML
// error page, a 5xx.
type httpError struct {
	Status int
	// Location is where a redirect pointed.
	Location string
}

func (e *httpError) Error() string {
	switch {
	case e.Status >= 300 && e.Status < 400:
		return fmt.Sprintf("the provider answered HTTP %d, a redirect to %s that was not followed", e.Status, terminal.Sanitize(e.Location, 200))
	case e.Status >= 400 && e.Status < 500:
		return fmt.Sprintf("the provider answered HTTP %d without an OAuth error code", e.Status)
	}
	return fmt.Sprintf("the provider answered HTTP %d", e.Status)
}

// Retryable tells whether the same request may succeed later: for the
// statuses that say so (408, 425, 429, and 5xx but 501 and 505).
func (e *httpError) Retryable() bool {
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false
	}
	return e.Status >= 500
}

// netError is a request that got no answer: the name was not found, the
// connection was refused or broke, it timed out, or the provider's
// certificate was not trusted.
type netError struct {
	// URL is what was asked for.
	URL string
	// Setting names where the URL came from (such as --issuer-url), for
	// the advice; empty says "the URL".
	Setting string
	Err     error
}

func (e *netError) Error() string { return describeNetErr(e.URL, e.Setting, e.Err) }
func (e *netError) Unwrap() error { return e.Err }

// Retryable tells whether the same request may succeed later: not when a
// certificate was refused or the name does not exist.
func (e *netError) Retryable() bool {
	var dns *net.DNSError
	if errors.As(e.Err, &dns) && dns.IsNotFound {
		return false
	}
	return !isCertError(e.Err)
}

// badAnswerError is a successful answer that cannot be used: not JSON,
// no access_token, a required field missing.
type badAnswerError struct{ What string }

func (e *badAnswerError) Error() string { return "the provider's answer " + e.What }

// Retryable: a garbled answer may be a passing fault.
func (e *badAnswerError) Retryable() bool { return true }

// Retryable tells whether err is a failure that may go away by itself, so
// that trying again later makes sense.
func Retryable(err error) bool {
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && r.Retryable()
}

// GrantRejected tells whether err is a well-formed OAuth error answer
// that says the grant (a refresh token, a device code) cannot be used:
// invalid_grant (RFC 6749 §5.2), or invalid_request, which some widely
// used providers answer for a refresh token that a newer sign-in has
// superseded.
func GrantRejected(err error) bool {
	var oe *OAuthError
	return errors.As(err, &oe) && (oe.Code == "invalid_grant" || oe.Code == "invalid_request")
}

// oauthErrorIn reads a well-formed OAuth error answer from a body.
func oauthErrorIn(body []byte) (*OAuthError, bool) {
	var v struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		// ErrorURI is not used, but decoded all the same: an error_uri
		// that is not a string makes the answer malformed.
		ErrorURI string `json:"error_uri"`
	}
	if json.Unmarshal(body, &v) != nil || !validCode(v.Error) {
		return nil, false
	}
	return &OAuthError{Code: v.Error, Description: v.ErrorDescription}, true
}

// validCode checks an error code's characters (RFC 6749 §5.2:
// %x20-21 / %x23-5B / %x5D-7E).
func validCode(s string) bool {
	return len(s) <= 200 && nqsChars(s, true)
}

// ValidScope checks a scope token (RFC 6749 §3.3:
// 1*( %x21 / %x23-5B / %x5D-7E )).
func ValidScope(s string) bool {
	return nqsChars(s, false)
}

// nqsChars tells whether s is not empty and made of RFC 6749's NQSCHAR
// (printable ASCII but the double quote and the backslash), the space
// included when space is.
func nqsChars(s string, space bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > 0x7e || c == '"' || c == '\\' || c < 0x21 && !(space && c == ' ') {
			return false
		}
	}
	return true
}

// classify sorts an error of an exchange into the types above, by type
// alone, never by message text: x/oauth2's messages include response
// bodies, which may hold tokens. url is what was asked for.
func classify(ctx context.Context, u string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if oe, ok := oauthErrorIn(re.Body); ok {
			return oe
		}
		if status >= 200 && status < 300 {
			return &badAnswerError{"is not a token and not a well-formed error"}
		}
		he := &httpError{Status: status}
		if re.Response != nil {
			he.Location = re.Response.Header.Get("Location")
		}
		return he
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &netError{URL: u, Err: ue.Err}
	}
	// x/oauth2's other errors: a body that does not parse, an answer
	// without an access_token, a connection that broke while reading.
	return &badAnswerError{"could not be used (not valid JSON, or no access_token)"}
}

func isCertError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) || errors.As(err, &verify)
}

// describeNetErr says in words why a request to u got no answer, and
// what to check; setting names where u came from.
func describeNetErr(u, setting string, err error) string {
	host, name := u, u
	if p, perr := url.Parse(u); perr == nil && p.Host != "" {
		host, name = p.Host, p.Hostname()
	}
	host, name = terminal.Sanitize(host, 200), terminal.Sanitize(name, 200)
	if setting == "" {
		setting = "the URL"
	}
	var dns *net.DNSError
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.As(err, &op) && op.Op == "proxyconnect":
		return fmt.Sprintf("the proxy %s, through which %s is asked, cannot be reached (%s); check HTTPS_PROXY, HTTP_PROXY and NO_PROXY in the environment", terminal.Sanitize(proxyAddr(op), 200), host, terminal.Sanitize(proxyProblem(op.Err), 200))
	case errors.As(err, &dns) && dns.IsNotFound:
		return fmt.Sprintf("the name %s was not found (DNS); check %s", terminal.Sanitize(dns.Name, 200), setting)
	case errors.As(err, &dns):
		return fmt.Sprintf("the name %s could not be looked up (DNS: %s); check your network and its DNS server", terminal.Sanitize(dns.Name, 200), terminal.Sanitize(dns.Err, 100))
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("the connection to %s was refused: nothing listens there; check %s and that the provider is running", host, setting)
	case errors.As(err, &unknown):
		return fmt.Sprintf("the certificate of %s is not trusted: it was issued by %q, which is not among the trusted authorities; if that is your organisation's CA, give it with --certificate-authority=FILE or --certificate-authority-data=BASE64", host, terminal.Sanitize(certIssuer(unknown.Cert), 200))
	case errors.As(err, &hostErr):
		names := certNames(hostErr.Certificate)
		if names == "" {
			return fmt.Sprintf("the certificate of %s names no host at all, so it is not valid for %s; the provider needs a certificate with %s among its subject alternative names", host, name, name)
		}
		return fmt.Sprintf("the certificate of %s is for %s, not for %s; use the name the certificate is for in %s", host, terminal.Sanitize(names, 200), name, setting)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && invalid.Cert != nil:
		return fmt.Sprintf("the certificate of %s is valid from %s to %s UTC, and this machine's clock says %s UTC; check the provider's certificate and this machine's clock",
			host, invalid.Cert.NotBefore.UTC().Format(time.DateTime), invalid.Cert.NotAfter.UTC().Format(time.DateTime), time.Now().UTC().Format(time.DateTime))
	case errors.As(err, &invalid):
		return fmt.Sprintf("the certificate of %s cannot be used (%s); check the provider's certificate", host, terminal.Sanitize(plain(invalid), 200))
	case isCertError(err):
		return fmt.Sprintf("the certificate of %s is not trusted (%s); give its CA with --certificate-authority=FILE or --certificate-authority-data=BASE64", host, terminal.Sanitize(plain(err), 200))
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("%s did not answer in time; check your network and proxy settings, or raise --request-timeout", host)
	case errors.As(err, new(tls.RecordHeaderError)), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http reports the second with a plain error, not a type.
		return fmt.Sprintf("%s did not answer in TLS: something there speaks plain http or another protocol; check the scheme and port in %s", host, setting)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("the connection to %s broke before the answer came; check %s, and your network and proxy settings", host, setting)
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return fmt.Sprintf("%s cannot be reached from this network; check your network and proxy settings", host)
	}
	var re *redirectError
	if errors.As(err, &re) {
		return re.Error()
	}
	return fmt.Sprintf("the request to %s failed (%s)", host, terminal.Sanitize(plain(err), 200))
}

// plain is an error's text without the prefixes of Go's packages.
func plain(err error) string {
	s := err.Error()
	for _, p := range []string{"tls: failed to verify certificate: ", "tls: ", "x509: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

// proxyProblem says in a few words why the proxy could not be reached.
func proxyProblem(err error) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &dns):
		return "its name was not found"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	}
	return plain(err)
}

// proxyAddr is the address of the proxy a proxyconnect error is about.
func proxyAddr(op *net.OpError) string {
	var dial *net.OpError
	var dns *net.DNSError
	switch {
	case op.Addr != nil:
		return op.Addr.String()
	case errors.As(op.Err, &dial) && dial.Addr != nil:
		return dial.Addr.String()
	case errors.As(op.Err, &dns):
		return dns.Name
	}
	return "(address unknown)"
}

// certNames lists the names and addresses a certificate is valid for.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) > 5 {
		names = append(names[:5], fmt.Sprintf("%d more", len(names)-5))
	}
	return strings.Join(names, ", ")
}

func certIssuer(c *x509.Certificate) string {
	if c == nil {
		return "an unknown authority"
	}
	return c.Issuer.String()
}
