package providertest

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// zitadelServer is op's LegacyServer with three endpoints of our own on
// top: the device authorization (to take an audience and to auto-approve),
// and the device code and refresh token grants (one-time device codes with
// invalid_grant on replay, and access tokens whose audience is the
// requested resource while the ID token's is the client).
type zitadelServer struct {
	*op.LegacyServer
	store       *zitadelStore
	audience    string // the one audience the client may ask for, or ""
	autoApprove bool
	subject     string
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
	for _, scope := range r.Data.Scopes {
		if !r.Client.IsScopeAllowed(scope) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for this client", scope)
		}
	}
	resource := zitadelAudiences(r.Form)
	for _, a := range resource {
		if s.audience == "" || a != s.audience {
			return nil, oidc.ErrInvalidTarget().WithDescription("audience %q is not allowed for this client", a)
		}
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
	issuer := op.IssuerFromContext(ctx)
	var accessToken string
	if len(req.resource) > 0 {
		claims := &zitadelAccessClaims{subject: req.subject, audience: req.resource, scopes: req.scopes}
		accessToken, err = op.CreateJWT(ctx, issuer, claims, exp, id, client, s.store)
	} else {
		accessToken, err = op.CreateBearerToken(id, req.subject, s.Provider().Crypto())
	}
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
		resp.IDToken, err = op.CreateIDToken(ctx, issuer, req, client.IDTokenLifetime(), accessToken, "", s.store, client)
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
		}
	}
	h.next.ServeHTTP(w, r)
}
