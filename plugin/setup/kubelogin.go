package setup

import (
	"context"
	"encoding/csv"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// conversion collects what one kubelogin user entry's get-token flags
// become.
type conversion struct {
	// extraScopes are kubelogin's --oidc-extra-scope values.
	extraScopes []string
	// token is the token kind handed to kubectl.
	token string
	// grant and pkce are our --grant-type and --pkce, empty for the
	// default; usePKCE is kubelogin's --oidc-use-pkce, which wins over
	// its --oidc-pkce-method.
	grant, pkce string
	usePKCE     bool
	// extraParams are name=value pairs in the order first given; a name
	// given again takes the later value, as in kubelogin's map.
	extraParams []string
	// rest are the other flags, in the order given.
	rest []string
	// secret is kubelogin's client secret, which goes to the exec
	// environment, never into the arguments.
	secret string
	// dropped lists what does not carry over, and why.
	dropped []string
}

// kubeloginFlag describes how one flag of `kubectl oidc-login get-token`
// (int128/kubelogin) carries over.
type kubeloginFlag struct {
	// takesValue is false for boolean flags.
	takesValue bool
	// carry records the value in c. It returns why the value does not
	// carry over, or "". Nil means the flag never does, for the reason why.
	carry func(c *conversion, value string) string
	why   string
}

// to carries a flag over as our flag name, value unchanged.
func to(name string) func(*conversion, string) string {
	return func(c *conversion, v string) string {
		c.rest = append(c.rest, "--"+name+"="+v)
		return ""
	}
}

// when carries a boolean flag over by calling set when it is true.
func when(set func(c *conversion)) func(*conversion, string) string {
	return func(c *conversion, v string) string {
		on, err := strconv.ParseBool(v)
		if v != "" && err != nil {
			return "not a boolean"
		}
		if v == "" || on {
			set(c)
		}
		return ""
	}
}

// always adds our flag for a boolean flag that is true.
func always(flag string) func(*conversion, string) string {
	return when(func(c *conversion) { c.rest = append(c.rest, flag) })
}

// kubeloginFlags is the conversion table, built per use (a package-level
// map would be built at every get-token's start).
func kubeloginFlags() map[string]kubeloginFlag {
	redirect := "a device login needs no redirect"
	local := "a device login needs no local server"
	browser := "no browser is opened unless you ask for it with --open-browser when you run login"
	return map[string]kubeloginFlag{
		"oidc-issuer-url": {true, to("issuer-url"), ""},
		"oidc-client-id":  {true, to("client-id"), ""},
		"oidc-client-secret": {true, func(c *conversion, v string) string {
			c.secret = v
			return ""
		}, ""},
		"oidc-extra-scope":               {true, carryScopes, ""},
		"oidc-auth-request-extra-params": {true, carryExtraParams, ""},
		"oidc-use-access-token":          {false, when(func(c *conversion) { c.token = plugin.TokenAccess }), ""},
		"certificate-authority":          {true, to("certificate-authority"), ""},
		"certificate-authority-data":     {true, to("certificate-authority-data"), ""},
		"insecure-skip-tls-verify":       {false, always("--insecure-skip-tls-verify"), ""},
		"token-cache-storage":            {true, carryTokenCache, ""},
		"force-keyring":                  {false, always("--token-cache=" + plugin.TokenCacheKeyring), ""},
		"no-keyring":                     {false, always("--token-cache=" + plugin.TokenCacheDisk), ""},
		"grant-type":                     {true, carryGrant, ""},
		"oidc-use-pkce":                  {false, when(func(c *conversion) { c.usePKCE = true }), ""},
		"oidc-pkce-method":               {true, carryPKCEMethod, ""},
		"token-cache-dir":                {true, nil, "sessions are kept in this plugin's own cache"},
		"listen-address":                 {true, nil, "a device login needs no local redirect server"},
		"oidc-redirect-url":              {true, nil, redirect},
		"oidc-redirect-url-hostname":     {true, nil, redirect},
		"skip-open-browser":              {false, nil, browser},
		"browser-command":                {true, nil, browser},
		"open-url-after-authentication":  {true, nil, "not applicable to a device login"},
		"authentication-timeout-sec":     {true, nil, "the device code's own lifetime bounds the wait"},
		"local-server-cert":              {true, nil, local},
		"local-server-key":               {true, nil, local},
		"tls-renegotiation-once":         {false, nil, "TLS renegotiation is not supported"},
		"tls-renegotiation-freely":       {false, nil, "TLS renegotiation is not supported"},
		"username":                       {true, nil, "passwords are never handled by this plugin"},
		"password":                       {true, nil, "passwords are never handled by this plugin"},
		"force-refresh":                  {false, nil, "use 'kubectl device-login login --force' instead"},
		"v":                              {true, nil, "use -v for step-by-step output"},
	}
}

// readList reads a flag value as pflag's list flags do: one CSV record.
func readList(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	return csv.NewReader(strings.NewReader(v)).Read()
}

// carryScopes adds kubelogin's --oidc-extra-scope, a comma-separated list.
func carryScopes(c *conversion, v string) string {
	scopes, err := readList(v)
	if err != nil {
		return "not a comma-separated list"
	}
	for _, s := range scopes {
		if s = strings.TrimSpace(s); s != "" {
			c.extraScopes = append(c.extraScopes, s)
		}
	}
	return ""
}

// carryExtraParams adds kubelogin's --oidc-auth-request-extra-params, a
// map: name=value pairs separated by commas, read as pflag reads it (a
// value with a single "=" is one pair, commas and all).
func carryExtraParams(c *conversion, v string) string {
	pairs := []string{strings.Trim(v, `"`)}
	if strings.Count(v, "=") > 1 {
		var err error
		if pairs, err = readList(v); err != nil {
			return "not a comma-separated list of name=value"
		}
	}
	for _, p := range pairs {
		name, _, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return "not a comma-separated list of name=value"
		}
		replaced := false
		for i, q := range c.extraParams {
			if strings.HasPrefix(q, name+"=") {
				c.extraParams[i], replaced = p, true
			}
		}
		if !replaced {
			c.extraParams = append(c.extraParams, p)
		}
	}
	return ""
}

// carryTokenCache maps kubelogin's storage (auto, keyring, disk).
func carryTokenCache(c *conversion, v string) string {
	switch v {
	case plugin.TokenCacheKeyring, plugin.TokenCacheDisk, plugin.TokenCacheNone:
		c.rest = append(c.rest, "--token-cache="+v)
		return ""
	case "auto":
		return "sessions are kept on disk unless you choose --token-cache=keyring"
	}
	return "not a storage this plugin knows"
}

// carryGrant keeps the grants this plugin has.
func carryGrant(c *conversion, v string) string {
	switch v {
	case plugin.GrantDeviceCode, plugin.GrantClientCredentials:
		c.grant = v
		return ""
	}
	c.grant = ""
	return "this plugin signs in with the device flow, or with client-credentials for CI"
}

// carryPKCEMethod maps kubelogin's auto|no|S256 onto --pkce.
func carryPKCEMethod(c *conversion, v string) string {
	switch v {
	case "auto":
		c.pkce = ""
	case "S256":
		c.pkce = "always"
	case "no":
		c.pkce = "never"
	default:
		return "not a PKCE method this plugin knows"
	}
	return ""
}

// kubeloginArgs returns the exec args of a user entry that runs kubelogin's
// get-token (as `kubectl oidc-login get-token ...` or
// `kubectl-oidc_login get-token ...`), without the command words.
func kubeloginArgs(command string, args []string) ([]string, bool) {
	base := strings.TrimSuffix(filepath.Base(command), ".exe")
	switch {
	case base == "kubectl" && len(args) >= 2 && args[0] == "oidc-login" && args[1] == "get-token":
		return args[2:], true
	case (base == "kubectl-oidc_login" || base == "kubectl-oidc-login") && len(args) >= 1 && args[0] == "get-token":
		return args[1:], true
	}
	return nil, false
}

// convertKubelogin maps kubelogin's get-token flags to ours, reporting the
// ones that do not carry over.
func convertKubelogin(args []string) *conversion {
	c := &conversion{token: plugin.TokenID} // kubelogin hands kubectl the ID token by default
	table := kubeloginFlags()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			c.dropped = append(c.dropped, a+" (an argument, not a flag)")
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f, known := table[name]
		if f.takesValue && !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		why := f.why
		switch {
		case !known:
			why = "unknown to this conversion"
		case f.carry != nil:
			why = f.carry(c, value)
		}
		if why != "" {
			c.dropped = append(c.dropped, fmt.Sprintf("--%s (%s)", name, why))
		}
	}
	return c
}

// args are our get-token flags: scopes, token kind, the rest in order.
func (c *conversion) args() []string {
	scopes := append([]string(nil), plugin.DefaultScopes...)
	if c.grant == plugin.GrantClientCredentials {
		scopes = []string{"openid"} // no refresh token to ask for
	}
	var out []string
	for _, s := range append(scopes, c.extraScopes...) {
		if !slices.Contains(out, "--scope="+s) {
			out = append(out, "--scope="+s)
		}
	}
	out = append(out, "--token="+c.token)
	out = append(out, c.rest...)
	for _, p := range c.extraParams {
		out = append(out, "--extra-param="+p)
	}
	if c.grant != "" {
		out = append(out, "--grant-type="+c.grant)
	}
	switch {
	case c.usePKCE:
		out = append(out, "--pkce=always")
	case c.pkce != "":
		out = append(out, "--pkce="+c.pkce)
	}
	return out
}

// unreadable says why a kubelogin user entry cannot be converted because
// a string in it holds control or invisible characters, naming the place
// but never the value (it may be a secret). It returns "" when all is
// plain text.
func unreadable(u userJSON, args []string) string {
	if !plainText(u.Name) {
		return fmt.Sprintf("the user name %s holds control or invisible characters", show(u.Name))
	}
	for i, a := range args {
		if plainText(a) {
			continue
		}
		flag := a
		if !strings.HasPrefix(a, "-") && i > 0 {
			flag = args[i-1] // the value of the flag before it
		}
		flag, _, _ = strings.Cut(flag, "=")
		return fmt.Sprintf("user %s: its argument %d (%s) holds control or invisible characters", show(u.Name), i+1, show(flag))
	}
	for _, e := range u.User.Exec.Env {
		if !plainText(e.Name) || !plainText(e.Value) {
			return fmt.Sprintf("user %s: its environment variable %s holds control or invisible characters", show(u.Name), show(e.Name))
		}
	}
	return ""
}

// setupFromKubelogin rewrites every user entry that runs kubelogin's
// get-token so that it runs this plugin, keeping the entry's name (so the
// contexts that use it keep working) and its environment. When an entry
// holds a string that cannot be shown or written safely, nothing is
// converted.
func setupFromKubelogin(ctx context.Context, so Options) error {
	view, err := so.view(ctx)
	if err != nil {
		return err
	}
	var entries []entry
	var refused []string
	for _, u := range view.Users {
		if u.User.Exec == nil {
			continue
		}
		kargs, ok := kubeloginArgs(u.User.Exec.Command, u.User.Exec.Args)
		if !ok {
			continue
		}
		if problem := unreadable(u, u.User.Exec.Args); problem != "" {
			refused = append(refused, problem)
			continue
		}
		c := convertKubelogin(kargs)
		e := entry{name: u.Name, args: append([]string{"get-token"}, c.args()...), secret: plugin.Secret(c.secret)}
		report := fmt.Sprintf("User %s: kubectl oidc-login get-token → %s %s", show(u.Name), so.Command, strings.Join(e.args, " "))
		fmt.Fprintln(so.Stderr, terminal.Sanitize(report, 4000))
		if e.secret != "" {
			fmt.Fprintf(so.Stderr, "  the client secret moves from the arguments to the exec environment (%s), still in plain text in the kubeconfig\n", plugin.ClientSecretEnv)
		}
		for _, d := range c.dropped {
			fmt.Fprintf(so.Stderr, "  not carried over: %s\n", terminal.Sanitize(d, 300))
		}
		entries = append(entries, e)
	}
	if len(refused) > 0 {
		return fmt.Errorf("nothing was converted: %s; fix the entry in %s with an editor, then run setup --from-kubelogin again", strings.Join(refused, "; "), so.describeKubeconfig())
	}
	if len(entries) == 0 {
		fmt.Fprintf(so.Stderr, "No user in %s runs 'kubectl oidc-login get-token'; nothing to convert.\n", so.describeKubeconfig())
		return nil
	}
	// The contexts are kept as they are (no --context): no ctxCmd.
	if err := so.write(ctx, view, entries, nil); err != nil {
		return err
	}
	if so.DryRun {
		return nil
	}
	fmt.Fprintf(so.Stderr, "Converted %d user(s). kubectl is handed the same token as before (the ID token, unless kubelogin had --oidc-use-access-token); the provider must allow the device flow and offline_access for the client.\n", len(entries))
	return nil
}
