// Package provider talks to an OAuth 2.0 / OpenID Connect provider for
// kubectl-device-login: discovery, the device authorization grant (RFC
// 8628) with its polling, refresh, client credentials and revocation
// (RFC 7009), all over one *http.Client. Its errors are typed
// (*OAuthError, *httpError, *netError, *badAnswerError) and never quote a
// response body, which may hold tokens.
package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// How a confidential client authenticates at the token endpoint.
const (
	// AuthBasic sends the client ID and secret in an HTTP Basic
	// Authorization header (client_secret_basic), which RFC 6749 §2.3.1
	// obliges every server to accept.
	AuthBasic = "basic"
	// AuthPost sends them in the request body (client_secret_post).
	AuthPost = "post"
)

// PKCE modes (RFC 7636 on the device authorization request).
const (
	PKCEAuto   = "auto"
	PKCEAlways = "always"
	PKCENever  = "never"
)

// Clock tells the time and waits. Tests substitute one that does not sleep.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or returns ctx's error when ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx is done.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Client is one OAuth 2.0 client of one provider. Its fields are set once
// and read by its methods; a Client is for one run.
type Client struct {
	// Issuer is the provider's issuer URL, without a trailing slash.
	Issuer string
	// ClientID is the client; ClientSecret is set for confidential
	// clients only.
	ClientID     string
	ClientSecret string
	// ClientAuth is how a confidential client authenticates: AuthBasic,
	// AuthPost, or "" to choose from discovery (Basic unless the provider
	// rules it out).
	ClientAuth string
	// Scopes are requested with the device authorization and client
	// credentials requests.
	Scopes []string
	// ExtraParams ("name=value") are sent with the device authorization
	// request.
	ExtraParams []string
	// PKCE is PKCEAuto (only when the provider refuses a device
	// authorization request without it), PKCEAlways or PKCENever.
	PKCE string
	// DeviceAuthorizationEndpoint and TokenEndpoint, when set, are used
	// instead of discovery's.
	DeviceAuthorizationEndpoint, TokenEndpoint string
	// AllowCrossOriginEndpoints accepts discovered device authorization
	// and token endpoints on another origin than the issuer.
	AllowCrossOriginEndpoints bool
	// HTTP is the client for every request (see NewHTTPClient).
	HTTP *http.Client
	// Clock defaults to RealClock.
	Clock Clock
	// Log, when set, is told each step (for -v).
	Log func(format string, args ...any)

	discovered  *Discovery
	discoverErr error
}

func (c *Client) clock() Clock {
	if c.Clock == nil {
		return RealClock{}
	}
	return c.Clock
}

func (c *Client) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}

// TLS says how to trust the provider's certificate.
type TLS struct {
	// CAFiles are PEM files of certificate authorities to trust besides
	// the system's; CAData are PEM certificates (as kubeconfigs carry
	// them, already base64-decoded).
	CAFiles []string
	CAData  [][]byte
	// Insecure disables certificate checks (tests only).
	Insecure bool
	// ReadFile reads a CA file (main passes one that refuses FIFOs and
	// devices).
	ReadFile func(path string) ([]byte, error)
}

// NewHTTPClient builds the client for every request to the provider:
// proxies from the environment, the extra certificate authorities, a
// timeout per exchange, and no redirects (see followingRedirects for the
// requests that may follow them).
func NewHTTPClient(t TLS, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.Insecure}
	if len(t.CAFiles) > 0 || len(t.CAData) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range t.CAFiles {
			pem, err := t.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("cannot read --certificate-authority %v", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--certificate-authority %s holds no PEM certificate", f)
			}
		}
		for i, pem := range t.CAData {
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--certificate-authority-data (number %d) holds no PEM certificate once base64-decoded; give base64 of the CA's PEM file, as a kubeconfig's certificate-authority-data holds it", i+1)
			}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: noRedirects}, nil
}

// noRedirects is the policy of every request but discovery and device
// authorization: the token and revocation endpoints follow no redirect,
// since their requests carry refresh tokens and secrets that Go would
// post again to wherever a 307 points.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// redirectError is a redirect refused by a checked policy.
type redirectError struct{ reason string }

func (e *redirectError) Error() string { return e.reason }

// followingRedirects is hc for a request that may follow redirects, each
// target checked like a URL from the flags (https, or http on loopback
// only); sameHost keeps them on the first request's host, for a request
// that carries a client secret.
func followingRedirects(hc *http.Client, sameHost bool) *http.Client {
	c := *hc
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return &redirectError{"the provider redirected more than 5 times"}
		}
		target := req.URL.String()
		if err := CheckURL("a redirect", target); err != nil {
			return &redirectError{fmt.Sprintf("%s was redirected to %s, which was not followed: %v", terminal.Sanitize(via[0].URL.String(), 200), terminal.Sanitize(target, 200), err)}
		}
		if sameHost && !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
			return &redirectError{fmt.Sprintf("%s was redirected to another host, %s, which was not followed: the request carries the client secret", terminal.Sanitize(via[0].URL.String(), 200), terminal.Sanitize(req.URL.Host, 200))}
		}
		return nil
	}
	return &c
}

// WithoutRedirects is hc with the policy of the token and revocation
// endpoints, for a client a test brings.
func WithoutRedirects(hc *http.Client) *http.Client {
	c := *hc
	c.CheckRedirect = noRedirects
	return &c
}

// CheckURL accepts https URLs, and http only on loopback addresses,
// without user information, and free of characters that could disguise
// them on a terminal. what names the URL in the error.
func CheckURL(what, raw string) error {
	_, err := ParseURL(what, raw)
	return err
}

// ParseURL parses raw and checks it as CheckURL does, for a caller that
// looks further into the URL.
func ParseURL(what, raw string) (*url.URL, error) {
	if !terminal.Plain(raw) {
		return nil, fmt.Errorf("%s %q holds control or invisible characters", what, terminal.Sanitize(raw, 200))
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%s %q is not an http(s) URL; give the full URL, e.g. https://auth.example.com", what, terminal.Sanitize(raw, 200))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s must not carry a user name or password", what)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%s %q must not have a fragment", what, terminal.Sanitize(raw, 200))
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("%s %q uses plain http; tokens may only travel over https (http is allowed on loopback addresses only)", what, terminal.Sanitize(raw, 200))
	}
	return u, nil
}

// isLoopback tells whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// origin is scheme://host[:port] of a URL, lower-cased.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// extraParams yields the name and value of each of ExtraParams
// ("name=value"), in order.
func (c *Client) extraParams() iter.Seq2[string, string] {
	return func(yield func(name, value string) bool) {
		for _, p := range c.ExtraParams {
			name, value, _ := strings.Cut(p, "=")
			if !yield(name, value) {
				return
			}
		}
	}
}

// oauth2Config is the x/oauth2 view of the client for these endpoints.
func (c *Client) oauth2Config(ep Endpoints, style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		Scopes:       c.Scopes,
		Endpoint: oauth2.Endpoint{
			DeviceAuthURL: ep.DeviceAuthorization,
			TokenURL:      ep.Token,
			AuthStyle:     style,
		},
	}
}

// authStyle is how this client authenticates at the token endpoint: a
// public client sends only its client_id in the body (x/oauth2's
// auto-detection would send two requests per poll); a confidential one
// uses HTTP Basic unless told otherwise or the provider rules it out.
func (c *Client) authStyle(ctx context.Context) oauth2.AuthStyle {
	if c.ClientSecret == "" {
		return oauth2.AuthStyleInParams
	}
	switch c.ClientAuth {
	case AuthPost:
		return oauth2.AuthStyleInParams
	case AuthBasic:
		return oauth2.AuthStyleInHeader
	}
	if d, err := c.discover(ctx); err == nil && len(d.TokenEndpointAuthMethods) > 0 {
		basic, post := false, false
		for _, m := range d.TokenEndpointAuthMethods {
			basic = basic || m == "client_secret_basic"
			post = post || m == "client_secret_post"
		}
		if post && !basic {
			c.logf("the provider does not accept client_secret_basic; sending the client secret in the request body")
			return oauth2.AuthStyleInParams
		}
	}
	return oauth2.AuthStyleInHeader
}

// ClientAuthRejected tells whether err is the provider's refusal of the
// client's authentication (invalid_client, RFC 6749 §5.2).
func ClientAuthRejected(err error) bool {
	var oe *OAuthError
	return errors.As(err, &oe) && oe.Code == "invalid_client"
}

// authAdvice tells a person what to check when the provider refused the
// client's authentication, sent in this style.
func (c *Client) authAdvice(style oauth2.AuthStyle) string {
	switch {
	case c.ClientSecret == "":
		return "check --client-id; if the client is confidential, give its secret in $DEVICE_LOGIN_CLIENT_SECRET or with --client-secret-file"
	case style == oauth2.AuthStyleInHeader:
		return "the client secret was sent with HTTP Basic (client_secret_basic): check --client-id and the secret, and if the provider registered the client for client_secret_post, pass --client-auth=post"
	case c.ClientAuth == AuthPost:
		return "the client secret was sent in the request body (client_secret_post, as --client-auth=post asks): check --client-id and the secret, and if the provider registered the client for client_secret_basic, leave out --client-auth=post"
	}
	return "the client secret was sent in the request body (client_secret_post, the one of the two that the provider's discovery document lists): check --client-id and the secret, and pass --client-auth=basic if the client is registered for client_secret_basic"
}

// explain adds authAdvice to a refusal of the client's authentication.
func (c *Client) explain(err error, style oauth2.AuthStyle) error {
	if ClientAuthRejected(err) {
		return fmt.Errorf("%w; %s", err, c.authAdvice(style))
	}
	return err
}

// context makes x/oauth2 use the client's HTTP client.
func (c *Client) context(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.HTTP)
}
