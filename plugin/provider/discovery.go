package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// maxBody bounds every response body read from a provider.
const maxBody = 1 << 20

// Endpoints are the provider URLs the plugin uses.
type Endpoints struct {
	DeviceAuthorization string
	Token               string
	Revocation          string
}

// Discovery is the part of an OpenID Provider's metadata the plugin reads.
type Discovery struct {
	Issuer                      string   `json:"issuer"`
	DeviceAuthorizationEndpoint string   `json:"device_authorization_endpoint"`
	TokenEndpoint               string   `json:"token_endpoint"`
	RevocationEndpoint          string   `json:"revocation_endpoint"`
	TokenEndpointAuthMethods    []string `json:"token_endpoint_auth_methods_supported"`
}

// discover fetches {issuer}/.well-known/openid-configuration (once per
// Client: a failure is remembered too, so that an issuer that does not
// answer costs one request timeout, not one per question asked of
// discovery) and checks that it names the same issuer. Redirects are
// followed only to URLs that pass CheckURL.
func (c *Client) discover(ctx context.Context) (*Discovery, error) {
	if c.discovered != nil || c.discoverErr != nil {
		return c.discovered, c.discoverErr
	}
	d, err := c.fetchDiscovery(ctx)
	if err != nil && ctx.Err() == nil {
		c.discoverErr = err
	}
	return d, err
}

// fetchDiscovery asks for the discovery document.
func (c *Client) fetchDiscovery(ctx context.Context) (*Discovery, error) {
	u := c.Issuer + "/.well-known/openid-configuration"
	c.logf("fetching %s", u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot build a request for %s: %v", terminal.Sanitize(u, 200), err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := followingRedirects(c.HTTP, false).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach the provider at %s: %w", terminal.Sanitize(u, 200), &netError{URL: u, Setting: "--issuer-url", Err: unwrapURL(err)})
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("the connection to %s broke while reading its discovery document: %w", terminal.Sanitize(u, 200), &netError{URL: u, Setting: "--issuer-url", Err: err})
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w for %s; check --issuer-url (it must be the issuer, without /.well-known/...)", &httpError{Status: resp.StatusCode, Location: resp.Header.Get("Location")}, terminal.Sanitize(u, 200))
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("the discovery document at %s is larger than 1 MiB; check --issuer-url", terminal.Sanitize(u, 200))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		c.logf("the discovery document has content type %s", terminal.Sanitize(mt, 60))
	}
	d, err := parseDiscovery(body, u, c.Issuer)
	if err != nil {
		return nil, err
	}
	c.discovered = d
	return d, nil
}

// parseDiscovery decodes a discovery document fetched from url and checks
// that it names issuer (compared without trailing slashes).
func parseDiscovery(body []byte, url, issuer string) (*Discovery, error) {
	var d Discovery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("the discovery document at %s is not valid JSON (%s); check --issuer-url", terminal.Sanitize(url, 200), JSONProblem(err))
	}
	if strings.TrimRight(d.Issuer, "/") != issuer {
		return nil, fmt.Errorf("the provider at %s calls itself %q, not %q; set --issuer-url to exactly its issuer", terminal.Sanitize(url, 200), terminal.Sanitize(d.Issuer, 200), terminal.Sanitize(issuer, 200))
	}
	return &d, nil
}

// Endpoints returns the URLs the device flow uses (see lookup).
func (c *Client) Endpoints(ctx context.Context) (Endpoints, error) {
	return c.lookup(ctx, true)
}

// TokenEndpoints returns the URLs a grant at the token endpoint alone
// (refresh, client credentials) uses: no device authorization endpoint is
// asked for (see lookup).
func (c *Client) TokenEndpoints(ctx context.Context) (Endpoints, error) {
	return c.lookup(ctx, false)
}

// lookup returns the token endpoint (with the device authorization
// endpoint when device is set) from the client's fields, asking discovery
// only for what they leave out; it adds discovery's revocation endpoint.
// Discovered URLs must pass CheckURL and, unless
// AllowCrossOriginEndpoints, share the issuer's origin: a discovery
// document (or a cluster extension naming an issuer) must not be able to
// send the device code, a refresh token or the client's secret to
// someone else. When the fields name every endpoint needed, a revocation
// endpoint that fails those checks is left out rather than refused.
func (c *Client) lookup(ctx context.Context, device bool) (Endpoints, error) {
	ep := Endpoints{Token: c.TokenEndpoint}
	if device {
		ep.DeviceAuthorization = c.DeviceAuthorizationEndpoint
	}
	if ep.Token != "" && (!device || ep.DeviceAuthorization != "") {
		if d, err := c.discover(ctx); err == nil && c.sameOriginOK(d.RevocationEndpoint) {
			ep.Revocation = d.RevocationEndpoint
		}
		return ep, nil
	}
	d, err := c.discover(ctx)
	if err != nil {
		return ep, err
	}
	if device && ep.DeviceAuthorization == "" {
		if d.DeviceAuthorizationEndpoint == "" {
			return ep, fmt.Errorf("the provider %s does not advertise a device_authorization_endpoint, so it may not support the device flow; enable it there, or set --device-authorization-endpoint", c.Issuer)
		}
		ep.DeviceAuthorization = d.DeviceAuthorizationEndpoint
	}
	if ep.Token == "" {
		if d.TokenEndpoint == "" {
			return ep, fmt.Errorf("the provider %s does not advertise a token_endpoint; set --token-endpoint", c.Issuer)
		}
		ep.Token = d.TokenEndpoint
	}
	ep.Revocation = d.RevocationEndpoint
	for _, e := range []struct {
		name, v    string
		discovered bool
	}{
		{"device_authorization_endpoint", ep.DeviceAuthorization, c.DeviceAuthorizationEndpoint == ""},
		{"token_endpoint", ep.Token, c.TokenEndpoint == ""},
		{"revocation_endpoint", ep.Revocation, true},
	} {
		if e.v == "" || !e.discovered {
			continue
		}
		if err := CheckURL("its "+e.name, e.v); err != nil {
			return ep, fmt.Errorf("the provider's discovery document is unusable: %v", err)
		}
		if o := origin(e.v); o != origin(c.Issuer) && !c.AllowCrossOriginEndpoints {
			return ep, fmt.Errorf("the provider %s names a %s on another origin, %s; what is sent there (a device code, a refresh token, the client secret) would go to someone other than the issuer. If that is how your provider is set up, pass --allow-cross-origin-endpoints", c.Issuer, e.name, terminal.Sanitize(o, 200))
		}
	}
	return ep, nil
}

// JSONProblem describes a JSON error without quoting the input.
func JSONProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("syntax error at byte %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("field %q has the wrong type", terminal.Sanitize(e.Field, 60))
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown field " + terminal.Sanitize(strings.TrimPrefix(msg, "json: unknown field "), 60)
	}
	return "it does not parse"
}
