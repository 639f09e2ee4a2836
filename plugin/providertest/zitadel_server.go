package providertest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// zitadelServer is op's LegacyServer with endpoints of our own on top: the
// device authorization (to take an audience, to require PKCE of a client
// that must use it, and to auto-approve), the device code and refresh
// token grants (one-time device codes with invalid_grant on replay, the
// PKCE check, and access tokens whose audience is the requested resource
// while the ID token's is the client), and the client credentials grant
// (to take an audience). With strictClientAuth it also refuses a client
// that authenticates with the other of client_secret_basic and
// client_secret_post than its own, which op by itself takes alike.
type zitadelServer struct {
	*op.LegacyServer
	store            *zitadelStore
	audience         string // the one audience the client may ask for, or ""
	autoApprove      bool
	subject          string
	strictClientAuth bool
}

// VerifyClient authenticates the client as op does, after refusing, in
// strict mode, a secret sent the other way than the client's registration
// says (Ory Hydra's behaviour).
func (s *zitadelServer) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if s.strictClientAuth {
		used := oidc.AuthMethodNone
		if _, _, basic := (&http.Request{Header: r.Header}).BasicAuth(); basic {
			used = oidc.AuthMethodBasic
		} else if r.Form.Get("client_secret") != "" {
			used = oidc.AuthMethodPost
		}
		if c, ok := s.store.clients[r.Data.ClientID]; ok && c.secret != "" && used != oidc.AuthMethodNone && used != c.authMethod {
			return nil, oidc.ErrInvalidClient().WithDescription("Client authentication failed. The OAuth 2.0 Client supports client authentication method '%s', but method '%s' was requested.", c.authMethod, used)
		}
	}
	return s.LegacyServer.VerifyClient(ctx, r)
}

// zitadelS256 is the S256 PKCE challenge of a verifier (RFC 7636 §4.2).
func zitadelS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// zitadelAudiences collects the audience (Hydra's name) and resource
// (RFC 8707's) parameters, space-separated or repeated.
func zitadelAudiences(form map[string][]string) []string {
	var out []string
	for _, name := range []string{"audience", "resource"} {
		for _, v := range form[name] {
			for _, a := range strings.Fields(v) {
				if !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
		}
	}
	return out
}

func (s *zitadelServer) DeviceAuthorization(ctx context.Context, r *op.ClientRequest[oidc.DeviceAuthorizationRequest]) (*op.Response, error) {
	// op checks the grant type only at the token endpoint.
	if !slices.Contains(r.Client.GrantTypes(), oidc.GrantTypeDeviceCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("this client may not use the device authorization grant")
	}
	resource, err := s.allowed(r.Client, r.Data.Scopes, r.Form)
	if err != nil {
		return nil, err
	}
	// op's device authorization request has no PKCE fields: it ignores
	// code_challenge. A client that must use PKCE gets it checked here.
	challenge := r.Form.Get("code_challenge")
	if c, ok := r.Client.(*zitadelClient); ok && c.requirePKCE {
		if challenge == "" || r.Form.Get("code_challenge_method") != "S256" {
			return nil, oidc.ErrInvalidRequest().WithDescription("this client must use PKCE: code_challenge required, with code_challenge_method S256")
		}
	} else {
		challenge = ""
	}
	resp, err := s.LegacyServer.DeviceAuthorization(ctx, r)
	if err != nil {
		return nil, err
	}
	da, ok := resp.Data.(*oidc.DeviceAuthorizationResponse)
	if !ok {
		return nil, oidc.ErrServerError().WithDescription("unexpected device authorization response")
	}
	if len(resource) > 0 {
		s.store.setDeviceResource(da.DeviceCode, resource)
	}
	if challenge != "" {
		s.store.setDeviceChallenge(da.DeviceCode, challenge)
	}
	if s.autoApprove {
		if err := s.store.decideDevice(da.UserCode, s.subject, true); err != nil {
			return nil, oidc.ErrServerError().WithParent(err)
		}
	}
	resp.Header.Set("Cache-Control", "no-store")
	return resp, nil
}

func (s *zitadelServer) DeviceToken(ctx context.Context, r *op.ClientRequest[oidc.DeviceAccessTokenRequest]) (*op.Response, error) {
	known, spent := s.store.deviceCodeSpent(r.Data.DeviceCode)
	if !known {
		return nil, oidc.ErrInvalidGrant().WithDescription("unknown device_code")
	}
	if spent {
		return nil, oidc.ErrInvalidGrant().WithDescription("device_code was already redeemed; the tokens issued for it are revoked")
	}
	if challenge := s.store.deviceChallenge(r.Data.DeviceCode); challenge != "" {
		switch verifier := r.Form.Get("code_verifier"); {
		case verifier == "":
			return nil, oidc.ErrInvalidGrant().WithDescription("code_verifier required: the device authorization request carried a code_challenge")
		case zitadelS256(verifier) != challenge:
			return nil, oidc.ErrInvalidGrant().WithDescription("code_verifier does not match the code_challenge")
		}
	}
	// op's own check: authorization_pending, access_denied, expired_token.
	state, err := op.CheckDeviceAuthorizationState(ctx, r.Client.GetID(), r.Data.DeviceCode, s.Provider())
	if err != nil {
		return nil, err
	}
	req := &zitadelTokenRequest{
		subject:    state.Subject,
		clientID:   state.ClientID,
		scopes:     state.Scopes,
		resource:   state.Audience, // the store keeps only requested audiences here
		authTime:   state.AuthTime,
		deviceCode: r.Data.DeviceCode,
	}
	tokens, err := s.issue(ctx, r.Client, req, "")
	if err != nil {
		return nil, err
	}
	return zitadelNoStore(tokens), nil
}

func (s *zitadelServer) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	found, err := op.RefreshTokenRequestByRefreshToken(ctx, s.store, r.Data.RefreshToken)
	if err != nil {
		return nil, err // invalid_grant
	}
	req, ok := found.(*zitadelTokenRequest)
	if !ok || req.GetClientID() != r.Client.GetID() {
		return nil, oidc.ErrInvalidGrant()
	}
	if err := op.ValidateRefreshTokenScopes(r.Data.Scopes, req); err != nil {
		return nil, err
	}
	tokens, err := s.issue(ctx, r.Client, req, r.Data.RefreshToken)
	if err != nil {
		return nil, err
	}
	return zitadelNoStore(tokens), nil
}

// ClientCredentialsExchange issues a client its own access token: a JWT
// whose aud is the requested audience (audience= or resource=), else an
// opaque one. No refresh token, no ID token (RFC 6749 §4.4.3).
func (s *zitadelServer) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	resource, err := s.allowed(r.Client, r.Data.Scope, r.Form)
	if err != nil {
		return nil, err
	}
	id := r.Client.GetID()
	req := &zitadelTokenRequest{subject: id, clientID: id, scopes: r.Data.Scope, resource: resource}
	tokenID, exp, err := s.store.CreateAccessToken(ctx, req)
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	accessToken, err := s.accessToken(ctx, r.Client, req, tokenID, exp)
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	return zitadelNoStore(&oidc.AccessTokenResponse{
		AccessToken: accessToken,
		TokenType:   oidc.BearerToken,
		ExpiresIn:   uint64(math.Round(time.Until(exp).Seconds())),
		Scope:       r.Data.Scope,
	}), nil
}

// allowed checks a request's scopes and audiences (audience= or
// resource=) against the client's, and returns the audiences.
func (s *zitadelServer) allowed(client op.Client, scopes []string, form url.Values) ([]string, error) {
	for _, scope := range scopes {
		if !client.IsScopeAllowed(scope) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for this client", scope)
		}
	}
	resource := zitadelAudiences(form)
	for _, a := range resource {
		if s.audience == "" || a != s.audience {
			return nil, oidc.ErrInvalidTarget().WithDescription("audience %q is not allowed for this client", a)
		}
	}
	return resource, nil
}

// accessToken makes the access token of a grant: a JWT whose aud is the
// requested resource, or an opaque one when none was requested.
func (s *zitadelServer) accessToken(ctx context.Context, client op.Client, req *zitadelTokenRequest, id string, exp time.Time) (string, error) {
	if len(req.resource) > 0 {
		claims := &zitadelAccessClaims{subject: req.subject, audience: req.resource, scopes: req.scopes}
		return op.CreateJWT(ctx, op.IssuerFromContext(ctx), claims, exp, id, client, s.store)
	}
	return op.CreateBearerToken(id, req.subject, s.Provider().Crypto())
}

func zitadelNoStore(data any) *op.Response {
	resp := op.NewResponse(data)
	resp.Header.Set("Cache-Control", "no-store")
	resp.Header.Set("Pragma", "no-cache")
	return resp
}

// issue creates the tokens of one grant: a refresh token when
// offline_access was granted (always a new one on refresh), an access token
// that is opaque, or a JWT whose aud is the requested resource, and an ID
// token when openid was granted.
func (s *zitadelServer) issue(ctx context.Context, client op.Client, req *zitadelTokenRequest, currentRefresh string) (*oidc.AccessTokenResponse, error) {
	var (
		id, refresh string
		exp         time.Time
		err         error
	)
	if currentRefresh != "" || slices.Contains(req.scopes, oidc.ScopeOfflineAccess) {
		id, refresh, exp, err = s.store.CreateAccessAndRefreshTokens(ctx, req, currentRefresh)
	} else {
		id, exp, err = s.store.CreateAccessToken(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	accessToken, err := s.accessToken(ctx, client, req, id, exp)
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	resp := &oidc.AccessTokenResponse{
		AccessToken:  accessToken,
		RefreshToken: refresh,
		TokenType:    oidc.BearerToken,
		ExpiresIn:    uint64(math.Round(time.Until(exp).Seconds())),
		Scope:        req.scopes,
	}
	if slices.Contains(req.scopes, oidc.ScopeOpenID) {
		resp.IDToken, err = op.CreateIDToken(ctx, op.IssuerFromContext(ctx), req, client.IDTokenLifetime(), accessToken, "", s.store, client)
		if err != nil {
			return nil, oidc.ErrServerError().WithParent(err)
		}
	}
	return resp, nil
}

// zitadelCounter counts the requests that reach the provider by kind.
type zitadelCounter struct {
	next      http.Handler
	endpoints op.Endpoints
	record    func(func(*Counts))
}

func (h *zitadelCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case oidc.DiscoveryEndpoint:
		h.record(func(c *Counts) { c.Discovery++ })
	case h.endpoints.DeviceAuthorization.Relative():
		h.record(func(c *Counts) { c.DeviceAuthorization++ })
	case h.endpoints.Revocation.Relative():
		h.record(func(c *Counts) { c.Revocation++ })
	case h.endpoints.Token.Relative():
		// op parses the form again later; ParseForm keeps what it read.
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		_ = r.ParseForm()
		switch oidc.GrantType(r.PostForm.Get("grant_type")) {
		case oidc.GrantTypeDeviceCode:
			h.record(func(c *Counts) { c.DeviceCodeGrant++ })
		case oidc.GrantTypeRefreshToken:
			h.record(func(c *Counts) { c.RefreshTokenGrant++ })
		case oidc.GrantTypeClientCredentials:
			h.record(func(c *Counts) { c.ClientCredentialsGrant++ })
		}
	}
	h.next.ServeHTTP(w, r)
}
