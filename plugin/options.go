// Package plugin is kubectl-device-login's library: it answers kubectl's
// ExecCredential requests from a cache of sessions, refreshes them, and
// signs people in with the OAuth 2.0 Device Authorization Grant (RFC 8628).
package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/adrg/xdg"

	"github.com/devicelogin/kubectl-device-login/cache"
)

// Token kinds handed to kubectl.
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
	// TokenCacheDisk keeps sessions in files in the cache directory.
	TokenCacheDisk = "disk"
	// TokenCacheKeyring keeps them in the operating system's keyring, with
	// a token-free index record in the cache directory; when the keyring
	// cannot be used they fall back to disk with a warning.
	TokenCacheKeyring = "keyring"
	// TokenCacheNone keeps nothing: tokens live in the memory of one run.
	TokenCacheNone = "none"
)

// Output formats of get-token (Options.Output).
const (
	OutputJSON  = "json"
	OutputToken = "token"
)

// DefaultScopes are requested when no scope is given.
var DefaultScopes = []string{"openid", "offline_access"}

// Defaults for Options fields left zero.
const (
	DefaultRefreshMargin   = time.Minute
	DefaultLockTimeout     = 15 * time.Minute
	DefaultRememberFailure = 30 * time.Second
	DefaultRequestTimeout  = 30 * time.Second
)

// Options configure one run of the plugin. Fields map one to one onto the
// command-line flags; the zero value of each means its default.
type Options struct {
	// IssuerURL is the OpenID provider's issuer (https, or http on loopback).
	IssuerURL string
	// ClientID is the OAuth 2.0 client; ClientSecret is only for
	// confidential clients (public clients are the default).
	ClientID     string
	ClientSecret string
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
	// CertificateAuthorities are PEM files trusted for the provider, in
	// addition to the system's roots.
	CertificateAuthorities []string
	// InsecureSkipTLSVerify disables certificate checks (tests only).
	InsecureSkipTLSVerify bool
	// CacheDir holds sessions (default $XDG_CACHE_HOME/kubectl-device-login).
	CacheDir string
	// TokenCache is where sessions are kept: TokenCacheDisk (default),
	// TokenCacheKeyring or TokenCacheNone. The lock and the failure markers
	// are files in CacheDir whatever it is.
	TokenCache string
	// RefreshMargin is how long before expiry a token is refreshed; it is
	// capped at half the token's lifetime (default DefaultRefreshMargin).
	RefreshMargin time.Duration
	// DeviceLogin is DeviceLoginAuto (default), DeviceLoginAlways or
	// DeviceLoginNever.
	DeviceLogin string
	// Output is OutputJSON (default) or OutputToken.
	Output string
	// RequestTimeout bounds each HTTP exchange with the provider (default
	// DefaultRequestTimeout).
	RequestTimeout time.Duration
	// LockTimeout bounds the wait for another process's sign-in or refresh
	// (default DefaultLockTimeout).
	LockTimeout time.Duration
	// RememberFailure is how long a failed sign-in or refresh is repeated
	// to kubectl's re-runs and background callers instead of retried
	// (default DefaultRememberFailure; negative disables).
	RememberFailure time.Duration
	// QR is QRAuto (default: a QR code of the sign-in address when stderr is
	// a terminal and the code fits in 24 rows), QRAlways or QRNever.
	QR string
	// Color allows bold and coloured text on Stderr (main sets it for
	// terminals when NO_COLOR is unset).
	Color bool
	// OpenBrowser, when set, is called with the sign-in address.
	OpenBrowser func(url string) error
	// Verbose makes the plugin describe its steps on Stderr.
	Verbose bool

	// ExecInfo is the value of KUBERNETES_EXEC_INFO.
	ExecInfo string
	// Stdout receives the credential; Stderr every human message.
	Stdout, Stderr io.Writer
	// StderrIsTerminal tells whether a person can see Stderr.
	StderrIsTerminal bool
	// Clock defaults to RealClock.
	Clock Clock
	// HTTPClient, when set, is used instead of one built from the TLS
	// options (tests).
	HTTPClient *http.Client
}

// config is Options resolved and checked.
type config struct {
	Options
	key cache.Key
	// store is the cache directory: locks and failure markers, and the
	// sessions when TokenCache is disk.
	store cache.Store
	// sessions is where sessions are read and written (set by
	// openSessions); hits is what the cache-hit path reads, the same
	// storage without the spare directory a read-only cache spills into.
	sessions, hits cache.Sessions
	http           *http.Client
	exec           ExecInfo
	// status is the countdown line shown on a terminal, if any.
	status string
	// lastPlain is when the last plain waiting line was written.
	lastPlain time.Time
}

// ClusterConfig is what the plugin reads from the kubeconfig cluster
// extension named client.authentication.k8s.io/exec, which kubectl passes
// in KUBERNETES_EXEC_INFO when the user entry sets provideClusterInfo:
// true. It lets one user entry serve clusters behind different providers.
// Flags take precedence over it.
type ClusterConfig struct {
	IssuerURL   string   `json:"issuerURL"`
	ClientID    string   `json:"clientID"`
	Scopes      []string `json:"scopes"`
	ExtraParams []string `json:"extraParams"`
}

// applyCluster fills the options the flags left empty from the cluster's
// extension.
func (c *config) applyCluster() error {
	raw := c.exec.ClusterConfig
	if len(raw) == 0 {
		return nil
	}
	var cc ClusterConfig
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cc); err != nil {
		return fmt.Errorf("the kubeconfig cluster extension client.authentication.k8s.io/exec cannot be used (%s); it may hold issuerURL, clientID, scopes and extraParams", jsonProblem(err))
	}
	if c.IssuerURL == "" {
		c.IssuerURL = cc.IssuerURL
	}
	if c.ClientID == "" {
		c.ClientID = cc.ClientID
	}
	if len(c.Scopes) == 0 {
		c.Scopes = cc.Scopes
	}
	if len(c.ExtraParams) == 0 {
		c.ExtraParams = cc.ExtraParams
	}
	return nil
}

// resolve checks the options and fills in defaults.
func (o *Options) resolve(info ExecInfo) (*config, error) {
	c := &config{Options: *o, exec: info}
	if err := c.applyCluster(); err != nil {
		return nil, err
	}
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	if c.IssuerURL == "" {
		return nil, fmt.Errorf("--issuer-url is required: set it to your OpenID provider's issuer, e.g. --issuer-url=https://auth.example.com (or issuerURL in the cluster's client.authentication.k8s.io/exec extension)")
	}
	if err := checkURL("--issuer-url", c.IssuerURL); err != nil {
		return nil, err
	}
	if c.ClientID == "" {
		return nil, fmt.Errorf("--client-id is required: set it to the OAuth client registered for kubectl at %s", c.IssuerURL)
	}
	for _, e := range []struct{ flag, v string }{
		{"--device-authorization-endpoint", c.DeviceAuthorizationEndpoint},
		{"--token-endpoint", c.TokenEndpoint},
	} {
		if e.v != "" {
			if err := checkURL(e.flag, e.v); err != nil {
				return nil, err
			}
		}
	}
	if len(c.Scopes) == 0 {
		c.Scopes = DefaultScopes
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return nil, fmt.Errorf("--scope %q is not a valid scope: give one scope per flag, without spaces", Sanitize(s, 60))
		}
	}
	for _, p := range c.ExtraParams {
		name, _, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--extra-param %q must look like name=value", Sanitize(p, 60))
		}
		switch name {
		case "client_id", "client_secret", "scope", "grant_type", "device_code":
			return nil, fmt.Errorf("--extra-param cannot set %s; use the dedicated flag", name)
		}
	}
	for _, e := range []struct {
		flag    string
		v       *string
		allowed []string // the first is the default
	}{
		{"--token", &c.Token, []string{TokenAccess, TokenID}},
		{"--device-login", &c.DeviceLogin, []string{DeviceLoginAuto, DeviceLoginAlways, DeviceLoginNever}},
		{"--qr", &c.QR, []string{QRAuto, QRAlways, QRNever}},
		{"--output", &c.Output, []string{OutputJSON, OutputToken}},
		{"--token-cache", &c.TokenCache, []string{TokenCacheDisk, TokenCacheKeyring, TokenCacheNone}},
	} {
		if err := oneOf(e.flag, e.v, e.allowed); err != nil {
			return nil, err
		}
	}
	if c.RefreshMargin == 0 {
		c.RefreshMargin = DefaultRefreshMargin
	}
	if c.RefreshMargin < 0 {
		return nil, fmt.Errorf("--refresh-margin cannot be negative")
	}
	if c.RememberFailure == 0 {
		c.RememberFailure = DefaultRememberFailure
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.LockTimeout <= 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir()
	}
	c.key = cache.Key{
		Issuer:      c.IssuerURL,
		ClientID:    c.ClientID,
		Scopes:      c.Scopes,
		ExtraParams: c.ExtraParams,
		Token:       c.Token,
	}.Normalize()
	c.store = cache.Store{Dir: c.CacheDir}
	c.openSessions(context.Background())
	return c, nil
}

// openSessions picks the session storage of --token-cache. ctx ends a
// wait for the keyring; resolve opens them with a background context, and
// commands open them again with theirs.
func (c *config) openSessions(ctx context.Context) {
	switch c.TokenCache {
	case TokenCacheKeyring:
		c.sessions = c.keyring(ctx)
	case TokenCacheNone:
		c.sessions = cache.None{}
	default:
		spare := &spareStore{of: c.store}
		c.sessions = cache.Spilling{Primary: c.store, Spare: spare, OnSpill: func(err error) {
			c.notef("could not save the session in the cache directory (%v); it is kept in %s until the cache directory can be written", err, spare.get().Dir)
		}}
		// A spilled session is found after the lock, on the slow path,
		// so that cache hits read one file.
		c.hits = c.store
		return
	}
	c.hits = c.sessions
}

// spareStore is the cache directory's spare (cache.Store.Spare), named
// only when first used: naming it hashes the directory and asks for the
// user ID, which cache hits, reading the cache directory alone, never need.
type spareStore struct {
	of    cache.Store
	once  sync.Once
	spare cache.Store
}

func (s *spareStore) get() cache.Store {
	s.once.Do(func() { s.spare = s.of.Spare() })
	return s.spare
}

func (s *spareStore) Load(k cache.Key) (*cache.Entry, error) { return s.get().Load(k) }
func (s *spareStore) Save(e *cache.Entry) error              { return s.get().Save(e) }
func (s *spareStore) Delete(id string) error                 { return s.get().Delete(id) }

// keyring is the keyring storage of this cache directory. Creating it
// touches nothing; only its methods reach the keyring.
func (c *config) keyring(ctx context.Context) *cache.Keyring {
	return &cache.Keyring{
		Disk:    c.store,
		Context: ctx,
		Warn: func(path string, reason error) {
			c.notef("warning: the keyring cannot be used: %v; the session is saved in %s (readable only by you) instead. To keep sessions in the keyring, unlock it or start a Secret Service; to keep them on disk without this warning, use --token-cache=disk", reason, path)
		},
		Note: func(msg string) { c.verbosef("%s", msg) },
	}
}

// oneOf sets *v to the first allowed value when empty and checks it is one
// of them.
func oneOf(flag string, v *string, allowed []string) error {
	if *v == "" {
		*v = allowed[0]
	}
	if slices.Contains(allowed, *v) {
		return nil
	}
	last := len(allowed) - 1
	return fmt.Errorf("%s must be %s or %s, not %q", flag, strings.Join(allowed[:last], ", "), allowed[last], Sanitize(*v, 40))
}

// DefaultCacheDir is $XDG_CACHE_HOME/kubectl-device-login, or the
// platform's equivalent (~/Library/Caches on macOS, %LOCALAPPDATA%\cache on
// Windows), as github.com/adrg/xdg finds it.
func DefaultCacheDir() string {
	return filepath.Join(xdg.CacheHome, "kubectl-device-login")
}

// checkURL accepts https URLs, and http only on loopback addresses.
func checkURL(flag, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%s %q is not an http(s) URL; give the full URL, e.g. https://auth.example.com", flag, Sanitize(raw, 200))
	}
	if u.User != nil {
		return fmt.Errorf("%s must not carry a user name or password", flag)
	}
	if u.Fragment != "" || u.RawQuery != "" && flag == "--issuer-url" {
		return fmt.Errorf("%s %q must not have a query or fragment", flag, Sanitize(raw, 200))
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%s %q uses plain http; tokens may only travel over https (http is allowed on loopback addresses only)", flag, Sanitize(raw, 200))
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// humanPresent tells whether a device login can be shown to someone.
func (c *config) humanPresent() bool {
	return c.exec.Interactive || c.StderrIsTerminal
}

// signInHint tells a person how to get a session when get-token cannot
// start a device login.
func (c *config) signInHint() string {
	if c.TokenCache == TokenCacheNone {
		return "--token-cache=none keeps no session between runs, so run kubectl in a terminal, or choose --token-cache=disk or keyring and sign in ahead with kubectl device-login login"
	}
	return "sign in with: " + c.loginCommand()
}

// loginCommand is the command a person can run in a terminal to sign in
// with these options. It never includes the client secret.
func (c *config) loginCommand() string {
	args := []string{"kubectl", "device-login", "login", "--issuer-url=" + c.IssuerURL, "--client-id=" + c.ClientID}
	if !slices.Equal(c.Scopes, DefaultScopes) {
		for _, s := range c.Scopes {
			args = append(args, "--scope="+s)
		}
	}
	for _, p := range c.ExtraParams {
		args = append(args, "--extra-param="+p)
	}
	if c.Token != TokenAccess {
		args = append(args, "--token="+c.Token)
	}
	if c.Options.CacheDir != "" && c.Options.CacheDir != DefaultCacheDir() {
		args = append(args, "--cache-dir="+c.Options.CacheDir)
	}
	if c.TokenCache == TokenCacheKeyring {
		args = append(args, "--token-cache="+c.TokenCache)
	}
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=./:@,+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
