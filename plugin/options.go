// Package plugin is kubectl-device-login's get-token: it answers
// kubectl's ExecCredential requests from a cache of sessions, refreshes
// them, and signs people in with the OAuth 2.0 Device Authorization Grant
// (RFC 8628). What a cache hit needs is here and in package cache; the
// provider client (plugin/provider), the terminal (plugin/terminal) and
// the commands around get-token (plugin/setup, plugin/status,
// plugin/logout) live in their own packages.
package plugin

import (
	"net/http"
	"path/filepath"
	"time"

	"github.com/adrg/xdg"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// Token kinds handed to kubectl (Options.Token).
const (
	TokenAccess = "access_token"
	TokenID     = "id_token"
)

// When get-token may start a device login (Options.DeviceLogin).
const (
	DeviceLoginAuto   = "auto"
	DeviceLoginAlways = "always"
	DeviceLoginNever  = "never"
)

// Where sessions are kept (Options.TokenCache).
const (
	TokenCacheDisk    = string(cache.Disk)
	TokenCacheKeyring = string(cache.Keyring)
	TokenCacheNone    = string(cache.Nowhere)
)

// Output formats of get-token (Options.Output).
const (
	OutputJSON  = "json"
	OutputToken = "token"
)

// How tokens are obtained (Options.GrantType).
const (
	GrantDeviceCode        = "device-code"
	GrantClientCredentials = "client-credentials"
)

// ClientSecretEnv is the environment variable that may hold the client
// secret, so that it stays out of the command line (which every user of
// the machine can read); a kubeconfig exec block's env can set it.
const ClientSecretEnv = "DEVICE_LOGIN_CLIENT_SECRET"

// DefaultScopes are requested when no scope is given, for the device
// flow; the client credentials grant requests none by default.
var DefaultScopes = []string{"openid", "offline_access"}

// Defaults for Options fields left zero.
const (
	DefaultRefreshMargin   = time.Minute
	DefaultLockTimeout     = 15 * time.Minute
	DefaultRememberFailure = 30 * time.Second
	DefaultRequestTimeout  = 30 * time.Second
)

// Allowed lists the values of an enumerated setting, by its flag name;
// the first is the default. Checks, flag help and completion all read
// this one table. It is nil for a flag that takes any value.
func Allowed(flag string) []string {
	switch flag {
	case "token":
		return []string{TokenAccess, TokenID}
	case "device-login":
		return []string{DeviceLoginAuto, DeviceLoginAlways, DeviceLoginNever}
	case "token-cache":
		return []string{TokenCacheDisk, TokenCacheKeyring, TokenCacheNone}
	case "output":
		return []string{OutputJSON, OutputToken}
	case "qr":
		return []string{terminal.QRAuto, terminal.QRAlways, terminal.QRNever}
	case "grant-type":
		return []string{GrantDeviceCode, GrantClientCredentials}
	case "pkce":
		return []string{provider.PKCEAuto, provider.PKCEAlways, provider.PKCENever}
	case "client-auth":
		return []string{provider.AuthBasic, provider.AuthPost}
	}
	return nil
}

// Options configure one run of the plugin. Fields map one to one onto the
// command-line flags; the zero value of each means its default. Resolve
// checks them and turns them into Settings.
type Options struct {
	// IssuerURL is the OpenID provider's issuer (https, or http on loopback).
	IssuerURL string
	// ClientID is the OAuth 2.0 client.
	ClientID string
	// ClientSecret (the --client-secret flag) is only for confidential
	// clients (public clients are the default); ClientSecretFile names a
	// file that holds it. When both are empty, Resolve reads
	// ClientSecretEnv.
	ClientSecret     string
	ClientSecretFile string
	// ClientAuth is how a confidential client authenticates: basic or
	// post; empty chooses from discovery (Basic unless ruled out).
	ClientAuth string
	// GrantType is GrantDeviceCode (default) or GrantClientCredentials.
	GrantType string
	// PKCE is auto (default), always or never.
	PKCE string
	// Scopes requested (default DefaultScopes).
	Scopes []string
	// ExtraParams are "name=value" pairs sent with the device authorization
	// request, such as audience=... or resource=....
	ExtraParams []string
	// Token is TokenAccess (default) or TokenID.
	Token string
	// DeviceAuthorizationEndpoint and TokenEndpoint override discovery.
	DeviceAuthorizationEndpoint string
	TokenEndpoint               string
	// AllowCrossOriginEndpoints accepts discovered endpoints on another
	// origin than the issuer.
	AllowCrossOriginEndpoints bool
	// CertificateAuthorities are PEM files trusted for the provider, in
	// addition to the system's; CertificateAuthorityData are base64 PEM
	// certificates, as kubeconfigs carry them.
	CertificateAuthorities   []string
	CertificateAuthorityData []string
	// InsecureSkipTLSVerify disables certificate checks (tests only).
	InsecureSkipTLSVerify bool
	// CacheDir holds sessions (default DefaultCacheDir()).
	CacheDir string
	// TokenCache is where sessions are kept: TokenCacheDisk (default),
	// TokenCacheKeyring or TokenCacheNone.
	TokenCache string
	// RefreshMargin is how long before expiry a token is refreshed; it is
	// capped at half the token's lifetime (default DefaultRefreshMargin).
	RefreshMargin time.Duration
	// DeviceLogin is DeviceLoginAuto (default), DeviceLoginAlways or
	// DeviceLoginNever.
	DeviceLogin string
	// Output is OutputJSON (default) or OutputToken.
	Output string
	// RequestTimeout bounds each HTTP exchange with the provider.
	RequestTimeout time.Duration
	// LockTimeout bounds the wait for another process's sign-in or refresh.
	LockTimeout time.Duration
	// RememberFailure is how long a failed sign-in or refresh is repeated
	// to kubectl's re-runs and background callers instead of retried
	// (default DefaultRememberFailure; negative disables).
	RememberFailure time.Duration

	// ExecInfo is the value of KUBERNETES_EXEC_INFO.
	ExecInfo string
	// StderrIsTerminal tells whether a person can see stderr.
	StderrIsTerminal bool
	// Clock defaults to the wall clock.
	Clock provider.Clock
	// HTTPClient, when set, is used instead of one built from the TLS
	// options (tests).
	HTTPClient *http.Client
}

// DefaultCacheDir is $XDG_CACHE_HOME/kubectl-device-login, or the
// platform's equivalent (~/Library/Caches on macOS, %LOCALAPPDATA%\cache on
// Windows), as github.com/adrg/xdg finds it.
func DefaultCacheDir() string {
	return filepath.Join(xdg.CacheHome, "kubectl-device-login")
}
