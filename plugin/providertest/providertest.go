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
}

// Counts are the requests that reached a provider, counted by the provider
// itself, not by the client under test.
type Counts struct {
	Discovery           int `json:"discovery"`
	DeviceAuthorization int `json:"device_authorization"`
	DeviceCodeGrant     int `json:"device_code_grant"`
	RefreshTokenGrant   int `json:"refresh_token_grant"`
	Revocation          int `json:"revocation"`
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
