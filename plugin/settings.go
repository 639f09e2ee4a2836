package plugin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/cache/minijson"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// Settings are Options resolved once: defaults filled in, flags and the
// cluster extension merged, every value checked, the cache key computed.
// Nothing changes them afterwards.
type Settings struct {
	// Key is the login identity: issuer, client, scopes, extra parameters
	// and token kind, normalized.
	Key cache.Key
	// ClientSecret is empty for public clients.
	ClientSecret Secret
	// ClientAuth, GrantType and PKCE are as in Options, defaults filled.
	ClientAuth, GrantType, PKCE string
	// DeviceAuthorizationEndpoint and TokenEndpoint override discovery.
	DeviceAuthorizationEndpoint, TokenEndpoint string
	AllowCrossOriginEndpoints                  bool
	// TLS says how to trust the provider.
	TLS provider.TLS
	// CacheDir is the cache directory, cleaned; CacheDirGiven tells
	// whether it was chosen (flag) rather than the default.
	CacheDir      string
	CacheDirGiven bool
	// TokenCache is where sessions are kept.
	TokenCache cache.Storage
	// Durations, defaults filled; RememberFailure ≤ 0 disables.
	RefreshMargin, LockTimeout, RememberFailure, RequestTimeout time.Duration
	// DeviceLogin and Output are as in Options, defaults filled.
	DeviceLogin, Output string
	// Exec is what the host said in KUBERNETES_EXEC_INFO.
	Exec ExecInfo
	// StderrIsTerminal tells whether a person can see stderr.
	StderrIsTerminal bool
	// Clock is the wall clock unless a test gives another.
	Clock provider.Clock
	// HTTPClient, when set, replaces the one built from TLS (tests).
	HTTPClient *http.Client
}

// Secret is a client secret. It prints as "(hidden)", so that no
// formatting of settings or errors can show it.
type Secret string

// String hides the secret.
func (Secret) String() string { return "(hidden)" }

// GoString hides the secret from %#v.
func (Secret) GoString() string { return `"(hidden)"` }

// ClusterConfig is what the plugin reads from the kubeconfig cluster
// extension named client.authentication.k8s.io/exec, which kubectl passes
// in KUBERNETES_EXEC_INFO when the user entry sets provideClusterInfo:
// true. It lets one user entry serve clusters behind different providers.
// Flags take precedence over it; its values are checked like flags.
type ClusterConfig struct {
	IssuerURL   string   `json:"issuerURL"`
	ClientID    string   `json:"clientID"`
	Scopes      []string `json:"scopes"`
	ExtraParams []string `json:"extraParams"`
}

// read decodes a cluster extension into cc exactly as a json.Decoder
// with DisallowUnknownFields does, without building its decoder by
// reflection on every cache hit of a kubeconfig that provides cluster
// information; FuzzClusterConfigMatchesEncodingJSON holds it to that. It
// fails where the Decoder fails, but with none of its descriptions.
func (cc *ClusterConfig) read(raw string) error {
	r := minijson.NewReader(raw)
	return r.Object(func(name []byte) error {
		switch string(name) {
		case "issuerurl":
			return r.String(&cc.IssuerURL)
		case "clientid":
			return r.String(&cc.ClientID)
		case "scopes":
			return r.Strings(&cc.Scopes)
		case "extraparams":
			return r.Strings(&cc.ExtraParams)
		}
		return errors.New("unknown member")
	})
}

// Resolve checks the options of a command about one login (get-token,
// login, logout, setup) and turns them into Settings. o.ExecInfo, when
// set, is parsed as KUBERNETES_EXEC_INFO.
func Resolve(o Options) (*Settings, error) {
	info, err := parseExecInfo(o.ExecInfo)
	if err != nil {
		return nil, err
	}
	if err := applyCluster(&o, info.ClusterConfig); err != nil {
		return nil, err
	}
	s, err := ResolveCache(o)
	if err != nil {
		return nil, err
	}
	s.Exec = info
	if err := s.resolveIdentity(o); err != nil {
		return nil, err
	}
	return s, nil
}

// ResolveCache checks the options that say where sessions are and how to
// reach providers, for the commands that work on every session of a
// cache directory (status, logout --all).
func ResolveCache(o Options) (*Settings, error) {
	s := &Settings{
		AllowCrossOriginEndpoints: o.AllowCrossOriginEndpoints,
		StderrIsTerminal:          o.StderrIsTerminal,
		Clock:                     o.Clock,
		HTTPClient:                o.HTTPClient,
		RefreshMargin:             o.RefreshMargin,
		LockTimeout:               o.LockTimeout,
		RememberFailure:           o.RememberFailure,
		RequestTimeout:            o.RequestTimeout,
	}
	if s.Clock == nil {
		s.Clock = provider.RealClock{}
	}
	for _, e := range []struct {
		flag, in string
		out      *string
	}{
		{"token", o.Token, &s.Key.Token},
		{"device-login", o.DeviceLogin, &s.DeviceLogin},
		{"output", o.Output, &s.Output},
		{"grant-type", o.GrantType, &s.GrantType},
		{"pkce", o.PKCE, &s.PKCE},
	} {
		v, err := oneOf(e.flag, e.in)
		if err != nil {
			return nil, err
		}
		*e.out = v
	}
	// --client-auth has no default: left out, it stays empty, and the
	// provider's discovery document chooses.
	if o.ClientAuth != "" {
		v, err := oneOf("client-auth", o.ClientAuth)
		if err != nil {
			return nil, err
		}
		s.ClientAuth = v
	}
	tc, err := oneOf("token-cache", o.TokenCache)
	if err != nil {
		return nil, err
	}
	s.TokenCache = cache.Storage(tc)
	switch {
	case s.RefreshMargin < 0:
		return nil, errors.New("--refresh-margin cannot be negative")
	case s.RefreshMargin == 0:
		s.RefreshMargin = DefaultRefreshMargin
	}
	if s.RememberFailure == 0 {
		s.RememberFailure = DefaultRememberFailure
	}
	if s.RequestTimeout <= 0 {
		s.RequestTimeout = DefaultRequestTimeout
	}
	if s.LockTimeout <= 0 {
		s.LockTimeout = DefaultLockTimeout
	}
	s.CacheDirGiven = o.CacheDir != ""
	if s.CacheDirGiven {
		if s.CacheDir, err = expandHome("--cache-dir", o.CacheDir); err != nil {
			return nil, err
		}
	} else {
		s.CacheDir = DefaultCacheDir()
	}
	s.CacheDir = filepath.Clean(s.CacheDir)
	s.TLS = provider.TLS{Insecure: o.InsecureSkipTLSVerify, ReadFile: readCAFile}
	for _, f := range o.CertificateAuthorities {
		p, err := expandHome("--certificate-authority", f)
		if err != nil {
			return nil, err
		}
		s.TLS.CAFiles = append(s.TLS.CAFiles, p)
	}
	for i, d := range o.CertificateAuthorityData {
		pem, err := base64.StdEncoding.DecodeString(strings.TrimSpace(d))
		switch {
		case err != nil && strings.Contains(d, "-----BEGIN"):
			return nil, fmt.Errorf("--certificate-authority-data (number %d) holds PEM text, not its base64; give base64 of the PEM file (base64 -w0 FILE), as a kubeconfig's certificate-authority-data holds it, or the file itself with --certificate-authority=FILE", i+1)
		case err != nil:
			return nil, fmt.Errorf("--certificate-authority-data (number %d) is not base64; give the certificate as the kubeconfig's certificate-authority-data holds it (base64 of the PEM file)", i+1)
		}
		s.TLS.CAData = append(s.TLS.CAData, pem)
	}
	secret, err := clientSecret(o)
	if err != nil {
		return nil, err
	}
	s.ClientSecret = secret
	return s, nil
}

// resolveIdentity checks the settings that name the login.
func (s *Settings) resolveIdentity(o Options) error {
	if o.IssuerURL == "" {
		return errors.New("--issuer-url is required: set it to your OpenID provider's issuer, e.g. --issuer-url=https://auth.example.com (or issuerURL in the cluster's client.authentication.k8s.io/exec extension)")
	}
	issuer, err := provider.ParseURL("--issuer-url", o.IssuerURL)
	if err != nil {
		return err
	}
	if issuer.RawQuery != "" {
		return fmt.Errorf("--issuer-url %q must not have a query", terminal.Sanitize(o.IssuerURL, 200))
	}
	if o.ClientID == "" {
		return fmt.Errorf("--client-id is required: set it to the OAuth client registered for kubectl at %s", o.IssuerURL)
	}
	if err := printable("--client-id", o.ClientID); err != nil {
		return err
	}
	for _, e := range []struct{ flag, v string }{
		{"--device-authorization-endpoint", o.DeviceAuthorizationEndpoint},
		{"--token-endpoint", o.TokenEndpoint},
	} {
		if e.v != "" {
			if err := provider.CheckURL(e.flag, e.v); err != nil {
				return err
			}
		}
	}
	s.DeviceAuthorizationEndpoint, s.TokenEndpoint = o.DeviceAuthorizationEndpoint, o.TokenEndpoint
	scopes := o.Scopes
	if len(scopes) == 0 && s.GrantType == GrantDeviceCode {
		scopes = DefaultScopes
	}
	for _, sc := range scopes {
		if !provider.ValidScope(sc) {
			return fmt.Errorf("--scope %q is not a valid scope: give one scope per flag, of printable ASCII characters without spaces, quotes or backslashes (RFC 6749 §3.3)", terminal.Sanitize(sc, 60))
		}
	}
	for _, p := range o.ExtraParams {
		name, _, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return fmt.Errorf("--extra-param %q must look like name=value", terminal.Sanitize(p, 60))
		}
		if err := printable("--extra-param", p); err != nil {
			return err
		}
		switch name {
		case "client_id", "client_secret", "scope", "grant_type", "device_code", "code_challenge", "code_challenge_method", "code_verifier":
			return fmt.Errorf("--extra-param cannot set %s; use the dedicated flag", name)
		}
	}
	if s.GrantType == GrantClientCredentials {
		if s.ClientSecret == "" {
			return fmt.Errorf("--grant-type=%s needs the client secret, in the environment variable %s or a file named by --client-secret-file", GrantClientCredentials, ClientSecretEnv)
		}
		if o.ClientSecret != "" {
			return fmt.Errorf("--grant-type=%s does not take --client-secret, which every user of this machine can read on the command line; set %s or use --client-secret-file", GrantClientCredentials, ClientSecretEnv)
		}
	}
	s.Key = cache.Key{
		Issuer:      o.IssuerURL,
		ClientID:    o.ClientID,
		Scopes:      scopes,
		ExtraParams: o.ExtraParams,
		Token:       s.Key.Token,
	}.Normalize()
	return nil
}

// applyCluster fills the options the flags left empty from the cluster's
// extension.
func applyCluster(o *Options, raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var cc ClusterConfig
	if cc.read(string(raw)) != nil {
		// encoding/json refuses it too, and says why in its own terms.
		cc = ClusterConfig{}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cc); err != nil {
			return fmt.Errorf("the kubeconfig cluster extension client.authentication.k8s.io/exec cannot be used (%s); it may hold issuerURL, clientID, scopes and extraParams", provider.JSONProblem(err))
		}
	}
	if o.IssuerURL == "" {
		o.IssuerURL = cc.IssuerURL
	}
	if o.ClientID == "" {
		o.ClientID = cc.ClientID
	}
	if len(o.Scopes) == 0 {
		o.Scopes = cc.Scopes
	}
	if len(o.ExtraParams) == 0 {
		o.ExtraParams = cc.ExtraParams
	}
	return nil
}

// clientSecret finds the client secret: --client-secret, else
// --client-secret-file, else $DEVICE_LOGIN_CLIENT_SECRET.
func clientSecret(o Options) (Secret, error) {
	if o.ClientSecret != "" && o.ClientSecretFile != "" {
		return "", errors.New("give the client secret one way: --client-secret or --client-secret-file, not both")
	}
	if o.ClientSecretFile != "" {
		path, err := expandHome("--client-secret-file", o.ClientSecretFile)
		if err != nil {
			return "", err
		}
		data, err := cache.ReadRegularFile(path, 64<<10)
		if err != nil {
			return "", fmt.Errorf("cannot read --client-secret-file %v", err)
		}
		secret := strings.TrimRight(string(data), "\r\n")
		if secret == "" || strings.ContainsAny(secret, "\r\n") {
			return "", fmt.Errorf("--client-secret-file %s must hold the secret on one line", path)
		}
		return Secret(secret), nil
	}
	if o.ClientSecret != "" {
		return Secret(o.ClientSecret), nil
	}
	return Secret(os.Getenv(ClientSecretEnv)), nil
}

func readCAFile(path string) ([]byte, error) { return cache.ReadRegularFile(path, 1<<20) }

// oneOf returns v, or the default when v is empty, after checking that it
// is one of the allowed values of flag.
func oneOf(flag, v string) (string, error) {
	allowed := Allowed(flag)
	if v == "" {
		return allowed[0], nil
	}
	if slices.Contains(allowed, v) {
		return v, nil
	}
	last := len(allowed) - 1
	return "", fmt.Errorf("--%s must be %s or %s, not %q", flag, strings.Join(allowed[:last], ", "), allowed[last], terminal.Sanitize(v, 40))
}

// printable refuses a setting that holds control or invisible characters
// (escape sequences, bidirectional overrides), which could disguise it or
// rewrite a terminal when it is printed.
func printable(flag, v string) error {
	if !terminal.Plain(v) {
		return fmt.Errorf("%s %q holds control or invisible characters; give the value as plain text", flag, terminal.Sanitize(v, 100))
	}
	return nil
}

// expandHome expands a leading ~ (or ~/) in a path to the home
// directory, as a shell would: kubectl runs exec plugins without one.
func expandHome(flag, path string) (string, error) {
	if path != "~" && !strings.HasPrefix(path, "~/") && !strings.HasPrefix(path, `~\`) {
		return path, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("%s %s starts with ~, but the home directory is unknown (%v); give the full path", flag, path, err)
	}
	return filepath.Join(home, path[1:]), nil
}

// humanPresent tells whether a device login can be shown to someone.
func (s *Settings) humanPresent() bool {
	return s.Exec.Interactive || s.StderrIsTerminal
}

// Provider is the provider client of these settings.
func (s *Settings) Provider(t *terminal.Terminal) (*provider.Client, error) {
	var hc *http.Client
	if s.HTTPClient != nil {
		hc = provider.WithoutRedirects(s.HTTPClient)
	} else {
		var err error
		if hc, err = provider.NewHTTPClient(s.TLS, s.RequestTimeout); err != nil {
			return nil, err
		}
	}
	return &provider.Client{
		Issuer:                      s.Key.Issuer,
		ClientID:                    s.Key.ClientID,
		ClientSecret:                string(s.ClientSecret),
		ClientAuth:                  s.ClientAuth,
		Scopes:                      s.Key.Scopes,
		ExtraParams:                 s.Key.ExtraParams,
		PKCE:                        s.PKCE,
		DeviceAuthorizationEndpoint: s.DeviceAuthorizationEndpoint,
		TokenEndpoint:               s.TokenEndpoint,
		AllowCrossOriginEndpoints:   s.AllowCrossOriginEndpoints,
		HTTP:                        hc,
		Clock:                       s.Clock,
		Log:                         t.Verbosef,
	}, nil
}

// Sessions is the session storage of these settings; ctx ends a wait for
// the keyring.
func (s *Settings) Sessions(ctx context.Context, t *terminal.Terminal) *cache.Sessions {
	return &cache.Sessions{
		Dir:     s.CacheDir,
		Storage: s.TokenCache,
		Context: ctx,
		Warn:    func(msg string) { t.Notef("%s", msg) },
		Note:    func(msg string) { t.Verbosef("%s", msg) },
	}
}

// loginCommand is the command a person can run in a terminal to sign in
// with these settings, quoted for a shell. It never includes the client
// secret.
func (s *Settings) loginCommand() string {
	args := []string{"kubectl", "device-login", "login", "--issuer-url=" + s.Key.Issuer, "--client-id=" + s.Key.ClientID}
	if !slices.Equal(s.Key.Scopes, cache.Key{Scopes: DefaultScopes}.Normalize().Scopes) {
		for _, sc := range s.Key.Scopes {
			args = append(args, "--scope="+sc)
		}
	}
	for _, p := range s.Key.ExtraParams {
		args = append(args, "--extra-param="+p)
	}
	if s.Key.Token != TokenAccess {
		args = append(args, "--token="+s.Key.Token)
	}
	// How this client signs in, when not the default: the command must
	// do what the failed one did.
	if s.PKCE != "" && s.PKCE != provider.PKCEAuto {
		args = append(args, "--pkce="+s.PKCE)
	}
	if s.ClientAuth != "" {
		args = append(args, "--client-auth="+s.ClientAuth)
	}
	if s.CacheDirGiven {
		args = append(args, "--cache-dir="+s.CacheDir)
	}
	if s.TokenCache == cache.Keyring {
		args = append(args, "--token-cache="+string(s.TokenCache))
	}
	return ShellJoin(args)
}

// signInHint tells a person how to get a session when get-token cannot
// start a device login.
func (s *Settings) signInHint() string {
	if s.TokenCache == cache.Nowhere {
		return "--token-cache=none keeps no session between runs, so run kubectl in a terminal, or choose --token-cache=disk or keyring and sign in ahead with kubectl device-login login"
	}
	return "sign in with: " + s.loginCommand()
}

// ShellJoin quotes each argument for a POSIX shell where needed and joins
// them with spaces.
func ShellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

// ShellQuote quotes s for a POSIX shell, unless it is made only of
// characters that need no quoting. (Callers that print the result keep
// control characters out of s in the first place.)
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=./:@,+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ForSession is these settings for another session of the same cache
// directory, as logout --all ends them: its login identity, with none of
// the flags that belong to one provider (endpoints, client secret).
func (s *Settings) ForSession(k cache.Key) *Settings {
	c := *s
	c.Key = k
	c.ClientSecret, c.ClientAuth = "", ""
	c.DeviceAuthorizationEndpoint, c.TokenEndpoint = "", ""
	return &c
}
