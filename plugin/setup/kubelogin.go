package setup

import (
	"context"

	"fmt"
	"github.com/devicelogin/kubectl-device-login/plugin"
	"path/filepath"
	"strings"
)

// kubeloginFlag describes how one flag of `kubectl oidc-login get-token`
// (int128/kubelogin) carries over.
type kubeloginFlag struct {
	takesValue bool
	// to maps the value to our flags; nil means it does not carry over.
	to func(value string) []string
	// why explains a flag that does not carry over.
	why string
}

func same(name string) func(string) []string {
	return func(v string) []string { return []string{"--" + name + "=" + v} }
}

// kubeloginFlags is the conversion table, built per use.
func kubeloginFlags() map[string]kubeloginFlag {
	return map[string]kubeloginFlag{
		"oidc-issuer-url":    {true, same("issuer-url"), ""},
		"oidc-client-id":     {true, same("client-id"), ""},
		"oidc-client-secret": {true, same("client-secret"), ""},
		"oidc-extra-scope": {true, func(v string) []string {
			var out []string
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, "--scope="+s)
				}
			}
			return out
		}, ""},
		"oidc-auth-request-extra-params": {true, same("extra-param"), ""},
		"certificate-authority":          {true, same("certificate-authority"), ""},
		"insecure-skip-tls-verify":       {false, func(string) []string { return []string{"--insecure-skip-tls-verify"} }, ""},
		"oidc-use-access-token":          {false, func(string) []string { return nil }, ""},
		"certificate-authority-data":     {true, same("certificate-authority-data"), ""},
		"token-cache-dir":                {true, nil, "sessions are kept in this plugin's own cache"},
		"token-cache-storage":            {true, same("token-cache"), ""},
		"grant-type":                     {true, nil, "this plugin signs people in with the device flow; for CI, see its --grant-type=client-credentials"},
		"listen-address":                 {true, nil, "a device login needs no local redirect server"},
		"oidc-redirect-url":              {true, nil, "a device login needs no redirect"},
		"oidc-redirect-url-hostname":     {true, nil, "a device login needs no redirect"},
		"skip-open-browser":              {false, nil, "no browser is opened unless you ask for it with --open-browser when you run login"},
		"browser-command":                {true, nil, "no browser is opened by default"},
		"open-url-after-authentication":  {true, nil, "not applicable to a device login"},
		"authentication-timeout-sec":     {true, nil, "the device code's own lifetime bounds the wait"},
		"local-server-cert":              {true, nil, "no local server is used"},
		"local-server-key":               {true, nil, "no local server is used"},
		"oidc-use-pkce":                  {false, nil, "this plugin sends PKCE with the device request when the provider requires it (--pkce=auto), or always with --pkce=always"},
		"oidc-pkce-method":               {true, nil, "this plugin sends PKCE with the device request when the provider requires it (--pkce=auto), or always with --pkce=always"},
		"username":                       {true, nil, "passwords are never handled by this plugin"},
		"password":                       {true, nil, "passwords are never handled by this plugin"},
		"force-refresh":                  {false, nil, "use 'kubectl device-login login --force' instead"},
		"v":                              {true, nil, "use -v for step-by-step output"},
	}
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
func convertKubelogin(args []string) (ours []string, dropped []string) {
	scopes := []string{"openid", "offline_access"}
	token := plugin.TokenID // kubelogin hands kubectl the ID token by default
	var rest []string
	table := kubeloginFlags()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			dropped = append(dropped, fmt.Sprintf("%s (an argument, not a flag)", a))
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f, known := table[name]
		if f.takesValue && !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		switch {
		case !known:
			dropped = append(dropped, "--"+name+" (unknown to this conversion)")
		case name == "oidc-use-access-token":
			if value == "" || value == "true" {
				token = plugin.TokenAccess
			}
		case f.to == nil:
			dropped = append(dropped, "--"+name+" ("+f.why+")")
		case name == "oidc-extra-scope":
			for _, s := range f.to(value) {
				scope := strings.TrimPrefix(s, "--scope=")
				if scope != "openid" && scope != "offline_access" {
					scopes = append(scopes, scope)
				}
			}
		case name == "insecure-skip-tls-verify" && value == "false":
		default:
			rest = append(rest, f.to(value)...)
		}
	}
	for _, s := range scopes {
		ours = append(ours, "--scope="+s)
	}
	ours = append(ours, "--token="+token)
	return append(ours, rest...), dropped
}

// setupFromKubelogin rewrites every user entry that runs kubelogin's
// get-token so that it runs this plugin, keeping the entry's name (so the
// contexts that use it keep working) and its environment.
func setupFromKubelogin(ctx context.Context, so Options) error {
	out, err := so.kubectl(ctx, "config", "view", "--raw", "-o", "json")
	if err != nil {
		return err
	}
	cfg, err := parseKubeconfigJSON(out)
	if err != nil {
		return err
	}
	converted := 0
	for _, u := range cfg.Users {
		if u.User.Exec == nil {
			continue
		}
		kargs, ok := kubeloginArgs(u.User.Exec.Command, u.User.Exec.Args)
		if !ok {
			continue
		}
		ours, dropped := convertKubelogin(kargs)
		var env []string
		for _, e := range u.User.Exec.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		fmt.Fprintf(so.Stderr, "User %q: kubectl oidc-login get-token → %s get-token %s\n", u.Name, so.Command, strings.Join(redactSecret(ours), " "))
		for _, d := range dropped {
			fmt.Fprintf(so.Stderr, "  not carried over: %s\n", d)
		}
		if err := so.writeUser(ctx, u.Name, append([]string{"get-token"}, ours...), env); err != nil {
			return err
		}
		converted++
	}
	if converted == 0 {
		fmt.Fprintf(so.Stderr, "No user in %s runs 'kubectl oidc-login get-token'; nothing to convert.\n", so.describeKubeconfig())
		return nil
	}
	fmt.Fprintf(so.Stderr, "Converted %d user(s). The ID token is still what kubectl sends (--token=id_token), as kubelogin did; the provider must allow the device flow and offline_access for the client.\n", converted)
	return nil
}

// redactSecret hides a client secret in a report.
func redactSecret(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "--client-secret=") {
			a = "--client-secret=(hidden)"
		}
		out[i] = a
	}
	return out
}
