package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxBody bounds every response body read from a provider.
const maxBody = 1 << 20

// endpoints are the provider URLs a device login needs.
type endpoints struct {
	DeviceAuthorization string
	Token               string
	Revocation          string
}

// endpoints returns the URLs from the flags, asking discovery only for
// what the flags leave out.
func (c *config) endpoints(ctx context.Context) (endpoints, error) {
	ep := endpoints{DeviceAuthorization: c.DeviceAuthorizationEndpoint, Token: c.TokenEndpoint}
	if ep.DeviceAuthorization != "" && ep.Token != "" {
		return ep, nil
	}
	d, err := c.discover(ctx)
	if err != nil {
		return ep, err
	}
	if ep.DeviceAuthorization == "" {
		if d.DeviceAuthorizationEndpoint == "" {
			return ep, fmt.Errorf("the provider %s does not advertise a device_authorization_endpoint, so it may not support the device flow; enable it there, or set --device-authorization-endpoint", c.key.Issuer)
		}
		ep.DeviceAuthorization = d.DeviceAuthorizationEndpoint
	}
	if ep.Token == "" {
		if d.TokenEndpoint == "" {
			return ep, fmt.Errorf("the provider %s does not advertise a token_endpoint; set --token-endpoint", c.key.Issuer)
		}
		ep.Token = d.TokenEndpoint
	}
	ep.Revocation = d.RevocationEndpoint
	for _, e := range []struct{ name, v string }{
		{"device_authorization_endpoint", ep.DeviceAuthorization},
		{"token_endpoint", ep.Token},
		{"revocation_endpoint", ep.Revocation},
	} {
		if e.v == "" {
			continue
		}
		if err := checkURL(e.name, e.v); err != nil {
			return ep, fmt.Errorf("the provider's discovery document is unusable: %v", err)
		}
		// url.Parse refuses ASCII controls but lets bidi overrides and
		// invisible characters through; these URLs are shown on stderr.
		if Sanitize(e.v, len(e.v)) != e.v {
			return ep, fmt.Errorf("the provider's discovery document is unusable: its %s holds control or invisible characters", e.name)
		}
	}
	return ep, nil
}

type discovery struct {
	Issuer                      string `json:"issuer"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	TokenEndpoint               string `json:"token_endpoint"`
	RevocationEndpoint          string `json:"revocation_endpoint"`
}

// discover fetches {issuer}/.well-known/openid-configuration and checks
// that it names the same issuer.
func (c *config) discover(ctx context.Context) (*discovery, error) {
	u := c.key.Issuer + "/.well-known/openid-configuration"
	c.verbosef("fetching %s", u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot build a request for %s: %v", Sanitize(u, 200), err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the provider at %s (%s); check the issuer URL and your network", u, networkProblem(ctx, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("the connection to %s broke while reading its discovery document (%s); try again", u, networkProblem(ctx, err))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the provider answered HTTP %d for %s; check --issuer-url (it must be the issuer, without /.well-known/...)", resp.StatusCode, u)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("the discovery document at %s is larger than 1 MiB; check --issuer-url", u)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		c.verbosef("discovery document has content type %s", Sanitize(mt, 60))
	}
	return parseDiscovery(body, u, c.key.Issuer)
}

// parseDiscovery decodes a discovery document fetched from url and checks
// that it names issuer (compared without trailing slashes).
func parseDiscovery(body []byte, url, issuer string) (*discovery, error) {
	var d discovery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("the discovery document at %s is not valid JSON (%s); check --issuer-url", url, jsonProblem(err))
	}
	if strings.TrimRight(d.Issuer, "/") != issuer {
		return nil, fmt.Errorf("the provider at %s calls itself %q, not %q; set --issuer-url to exactly its issuer", url, Sanitize(d.Issuer, 200), issuer)
	}
	return &d, nil
}
