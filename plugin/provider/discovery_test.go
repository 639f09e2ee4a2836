package provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestEndpointLookups: which endpoints the device flow (Endpoints) and a
// grant at the token endpoint alone (client credentials) take from the
// client's fields and from discovery, and which discovered ones they
// refuse: one that fails CheckURL, or one on another origin than the
// issuer unless AllowCrossOriginEndpoints.
func TestEndpointLookups(t *testing.T) {
	var (
		mu  sync.Mutex
		doc map[string]any
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		writeJSON(w, 200, doc)
	}))
	t.Cleanup(srv.Close)
	const elsewhere = "https://elsewhere.example"
	own := func(path string) string { return srv.URL + path }
	type want struct {
		ok bool
		ep Endpoints
	}
	for _, tc := range []struct {
		name string
		// device_authorization_endpoint, token_endpoint and
		// revocation_endpoint in discovery ("" leaves one out).
		da, token, rev string
		// The client's fields.
		givenDA, givenToken string
		allow               bool
		device, tokenOnly   want
	}{
		{name: "all discovered", da: own("/device"), token: own("/token"), rev: own("/revoke"),
			device:    want{true, Endpoints{own("/device"), own("/token"), own("/revoke")}},
			tokenOnly: want{true, Endpoints{"", own("/token"), own("/revoke")}}},
		{name: "no revocation endpoint", da: own("/device"), token: own("/token"),
			device:    want{true, Endpoints{own("/device"), own("/token"), ""}},
			tokenOnly: want{true, Endpoints{"", own("/token"), ""}}},
		{name: "no device endpoint", token: own("/token"),
			tokenOnly: want{true, Endpoints{"", own("/token"), ""}}},
		{name: "no token endpoint", da: own("/device")},
		{name: "device endpoint elsewhere", da: elsewhere + "/device", token: own("/token"),
			tokenOnly: want{true, Endpoints{"", own("/token"), ""}}},
		{name: "device endpoint elsewhere, allowed", da: elsewhere + "/device", token: own("/token"), allow: true,
			device:    want{true, Endpoints{elsewhere + "/device", own("/token"), ""}},
			tokenOnly: want{true, Endpoints{"", own("/token"), ""}}},
		{name: "token endpoint elsewhere", da: own("/device"), token: elsewhere + "/token"},
		{name: "token endpoint elsewhere, allowed", da: own("/device"), token: elsewhere + "/token", allow: true,
			device:    want{true, Endpoints{own("/device"), elsewhere + "/token", ""}},
			tokenOnly: want{true, Endpoints{"", elsewhere + "/token", ""}}},
		{name: "revocation endpoint elsewhere", da: own("/device"), token: own("/token"), rev: elsewhere + "/revoke"},
		{name: "revocation endpoint elsewhere, allowed", da: own("/device"), token: own("/token"), rev: elsewhere + "/revoke", allow: true,
			device:    want{true, Endpoints{own("/device"), own("/token"), elsewhere + "/revoke"}},
			tokenOnly: want{true, Endpoints{"", own("/token"), elsewhere + "/revoke"}}},
		{name: "token endpoint with a fragment", da: own("/device"), token: own("/token#x"), allow: true},
		{name: "token endpoint over http elsewhere", da: own("/device"), token: "http://elsewhere.example/token", allow: true},
		{name: "revocation endpoint with a fragment", da: own("/device"), token: own("/token"), rev: own("/revoke#x"), allow: true},
		{name: "token endpoint given", da: own("/device"), token: elsewhere + "/token", rev: own("/revoke"), givenToken: "https://given.example/token",
			device:    want{true, Endpoints{own("/device"), "https://given.example/token", own("/revoke")}},
			tokenOnly: want{true, Endpoints{"", "https://given.example/token", own("/revoke")}}},
		{name: "token endpoint given, revocation elsewhere", da: own("/device"), token: own("/token"), rev: elsewhere + "/revoke", givenToken: "https://given.example/token",
			tokenOnly: want{true, Endpoints{"", "https://given.example/token", ""}}},
		{name: "both given, revocation elsewhere", rev: elsewhere + "/revoke", givenDA: "https://given.example/device", givenToken: "https://given.example/token",
			device:    want{true, Endpoints{"https://given.example/device", "https://given.example/token", ""}},
			tokenOnly: want{true, Endpoints{"", "https://given.example/token", ""}}},
		{name: "both given, revocation discovered", rev: own("/revoke"), givenDA: "https://given.example/device", givenToken: "https://given.example/token",
			device:    want{true, Endpoints{"https://given.example/device", "https://given.example/token", own("/revoke")}},
			tokenOnly: want{true, Endpoints{"", "https://given.example/token", own("/revoke")}}},
		{name: "device endpoint given, token elsewhere", token: elsewhere + "/token", givenDA: "https://given.example/device"},
		{name: "device endpoint given", token: own("/token"), givenDA: "https://given.example/device",
			device:    want{true, Endpoints{"https://given.example/device", own("/token"), ""}},
			tokenOnly: want{true, Endpoints{"", own("/token"), ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := map[string]any{"issuer": srv.URL}
			for k, v := range map[string]string{"device_authorization_endpoint": tc.da, "token_endpoint": tc.token, "revocation_endpoint": tc.rev} {
				if v != "" {
					d[k] = v
				}
			}
			mu.Lock()
			doc = d
			mu.Unlock()
			for _, l := range []struct {
				name   string
				lookup func(*Client) (Endpoints, error)
				want   want
			}{
				{"Endpoints", func(c *Client) (Endpoints, error) { return c.Endpoints(context.Background()) }, tc.device},
				{"the token-only lookup", tokenOnlyLookup, tc.tokenOnly},
			} {
				c := &Client{Issuer: srv.URL, ClientID: "kubectl", HTTP: srv.Client(),
					DeviceAuthorizationEndpoint: tc.givenDA, TokenEndpoint: tc.givenToken, AllowCrossOriginEndpoints: tc.allow}
				ep, err := l.lookup(c)
				switch {
				case !l.want.ok && err == nil:
					t.Errorf("%s accepted %+v", l.name, ep)
				case l.want.ok && err != nil:
					t.Errorf("%s: %v", l.name, err)
				case l.want.ok && ep != l.want.ep:
					t.Errorf("%s = %+v, want %+v", l.name, ep, l.want.ep)
				}
			}
		})
	}
}

func tokenOnlyLookup(c *Client) (Endpoints, error) { return c.TokenEndpoints(context.Background()) }
