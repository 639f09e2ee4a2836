// Package providertest starts real OpenID Connect providers for tests and
// for the demo: npm's oidc-provider under Node, and zitadel's op package in
// process. Both speak the OAuth 2.0 Device Authorization Grant and rotate
// refresh tokens. Nothing here is linked into the plugin binary.
package providertest

import (
	"context"
	"time"
)

// Options configure a test provider. The zero value gives a provider with
// the providers' usual lifetimes and a 1 s polling interval.
type Options struct {
	// AccessTokenTTL is the lifetime of access tokens (default 1h).
	AccessTokenTTL time.Duration
	// IDTokenTTL is the lifetime of ID tokens (default 1h).
	IDTokenTTL time.Duration
	// DeviceCodeTTL is the device code's expires_in (default 10m).
	DeviceCodeTTL time.Duration
	// Interval is the polling interval the device authorization response
	// advertises (default 1s, to keep tests quick).
	Interval time.Duration
	// AutoApprove approves every device authorization as the test user as
	// soon as it is issued, as if a person had done it instantly.
	AutoApprove bool
	// CertFile and KeyFile, when set, make the provider serve HTTPS with
	// this PEM certificate and key instead of plain HTTP on loopback.
	CertFile, KeyFile string
	// Audience, when set, is a resource/audience the public client may
	// request; access tokens issued for it are RFC 9068 JWTs whose aud
	// is this value.
	Audience string
	// ClientSecret, when set, registers three confidential clients besides
	// the public one, each with this secret: BasicClientID, PostClientID
	// and CIClientID.
	ClientSecret string
	// StrictClientAuth refuses, with 401 invalid_client, a confidential
	// client that authenticates with the other of client_secret_basic and
	// client_secret_post than it was registered for, as Ory Hydra does.
	// Without it both providers take either method from either client, as
	// they do by themselves.
	StrictClientAuth bool
	// PKCEClient registers PKCEClientID, a public client that must use
	// PKCE on the device flow.
	PKCEClient bool
}

// The clients that Options add to the public one; both providers register
// them under these IDs.
const (
	// BasicClientID is a confidential client registered for
	// client_secret_basic, allowed the device_code and refresh_token
	// grants and the public client's scopes.
	BasicClientID = "kubectl-basic"
	// PostClientID is the same client registered for client_secret_post.
	PostClientID = "kubectl-post"
	// CIClientID is a confidential client (client_secret_basic) allowed
	// only the client_credentials grant. Asked for Options.Audience (with
	// audience= or resource= on the token request) it gets an RFC 9068
	// JWT access token whose aud is that audience, else an opaque one.
	CIClientID = "ci"
	// PKCEClientID is a public client like the default one that must send
	// an S256 code_challenge with its device authorization requests (else
	// 400 invalid_request) and the matching code_verifier with every
	// device_code grant request (else invalid_grant), as Keycloak asks of
	// a client whose PKCE method is set. Neither provider does that by
	// itself on the device flow; providertest adds it.
	PKCEClientID = "kubectl-pkce"
)

// Counts are the requests that reached a provider, counted by the provider
// itself, not by the client under test.
type Counts struct {
	Discovery           int `json:"discovery"`
	DeviceAuthorization int `json:"device_authorization"`
	DeviceCodeGrant     int `json:"device_code_grant"`
	RefreshTokenGrant   int `json:"refresh_token_grant"`
	Revocation          int `json:"revocation"`
	// ClientCredentialsGrant counts token requests of that grant.
	ClientCredentialsGrant int `json:"client_credentials_grant"`
}

// Provider is a running OpenID Connect provider.
type Provider interface {
	// Issuer is the issuer URL, exactly as its discovery document states it.
	Issuer() string
	// ClientID is a public client (token_endpoint_auth_method none) allowed
	// the device_code and refresh_token grants and the scopes
	// openid, offline_access, profile and email.
	ClientID() string
	// Subject and Email identify the test user who approves logins.
	Subject() string
	Email() string
	// Approve signs in as the test user and approves the device
	// authorization with this user code, over HTTP like a browser.
	Approve(ctx context.Context, userCode string) error
	// Deny does the same but refuses the request.
	Deny(ctx context.Context, userCode string) error
	// RevokeRefreshToken revokes a refresh token (and so the session) at
	// the provider.
	RevokeRefreshToken(ctx context.Context, refreshToken string) error
	// Counts reports the requests the provider has seen so far.
	Counts(ctx context.Context) (Counts, error)
	// Close stops the provider.
	Close() error
}
