package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
	"github.com/spf13/pflag"
)

// Flags shared by several commands, and their help.

// emptyInline refuses --name= for any flag before pflag sees it, so that
// flags of every type (durations, booleans) get the sentence emptyValue
// gives the others.
func emptyInline(fs *pflag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if name, ok := strings.CutSuffix(strings.TrimPrefix(a, "--"), "="); ok && strings.HasPrefix(a, "--") && fs.Lookup(name) != nil {
			return emptyError(name)
		}
	}
	return nil
}

func emptyError(name string) error {
	return fmt.Errorf("--%s needs a value; leave the flag out to get its default", name)
}

// emptyValue refuses a flag given with an empty value (--token=): one
// rule for every flag, since an empty value never means anything useful.
// Leaving a flag out gives its default.
func emptyValue(fs *pflag.FlagSet) error {
	var err error
	fs.Visit(func(f *pflag.Flag) {
		empty := f.Value.String() == ""
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			empty = slices.Contains(sv.GetSlice(), "")
		}
		if empty && err == nil {
			err = emptyError(f.Name)
		}
	})
	return err
}

// repeated is a flag that may be given several times, each value added
// to a list; the list starts empty. It is pflag's StringArray without
// its cost on every run: pflag writes each such flag's default out
// through encoding/csv and a 4 KiB buffer when the flag is defined:
// about 40 µs of every get-token, measured.
type repeated struct{ list *[]string }

func (r repeated) Set(v string) error        { return r.Append(v) }
func (r repeated) Append(v string) error     { *r.list = append(*r.list, v); return nil }
func (r repeated) Replace(vs []string) error { *r.list = slices.Clone(vs); return nil }
func (r repeated) GetSlice() []string        { return slices.Clone(*r.list) }
func (r repeated) Type() string              { return "stringArray" }
func (r repeated) String() string            { return "[" + strings.Join(*r.list, ",") + "]" }

// identityFlags are the flags that say which login a command is about.
func identityFlags(fs *pflag.FlagSet, o *plugin.Options) {
	fs.StringVar(&o.IssuerURL, "issuer-url", "", "OpenID provider's issuer URL (https, or http on loopback)")
	fs.StringVar(&o.ClientID, "client-id", "", "OAuth 2.0 client ID registered for kubectl")
	secretFlags(fs, o)
	fs.Var(repeated{&o.Scopes}, "scope", "scope to request; repeat for several (default openid and offline_access; none with --grant-type=client-credentials)")
	fs.Var(repeated{&o.ExtraParams}, "extra-param", "name=value sent with the device authorization request (the token request with --grant-type=client-credentials), e.g. audience=kubernetes; repeatable")
	fs.StringVar(&o.Token, "token", plugin.TokenAccess, "token to give kubectl")
	fs.StringVar(&o.GrantType, "grant-type", plugin.GrantDeviceCode, "how to get tokens (client-credentials: the client's own, for CI; needs the client secret)")
	fs.StringVar(&o.PKCE, "pkce", "auto", "send a PKCE challenge with the device authorization request (auto: only when the provider refuses the request without one)")
}

// secretFlags say where a confidential client's secret is.
func secretFlags(fs *pflag.FlagSet, o *plugin.Options) {
	fs.StringVar(&o.ClientSecret, "client-secret", "", "client secret, for confidential clients only (visible to every user of this machine on the command line: prefer $"+plugin.ClientSecretEnv+" or --client-secret-file)")
	fs.StringVar(&o.ClientSecretFile, "client-secret-file", "", "file that holds the client secret")
	fs.StringVar(&o.ClientAuth, "client-auth", "", "how a confidential client sends its secret (default basic, unless the provider only takes post)")
}

// transportFlags say how to reach the provider and where sessions live.
func transportFlags(fs *pflag.FlagSet, v *values) {
	o := &v.o
	fs.StringVar(&o.DeviceAuthorizationEndpoint, "device-authorization-endpoint", "", "device authorization endpoint, for providers without discovery")
	fs.StringVar(&o.TokenEndpoint, "token-endpoint", "", "token endpoint, for providers without discovery")
	fs.Var(repeated{&o.CertificateAuthorities}, "certificate-authority", "PEM file of a CA to trust for the provider, besides the system's; repeatable")
	fs.Var(repeated{&o.CertificateAuthorityData}, "certificate-authority-data", "base64 PEM of a CA to trust for the provider, as in a kubeconfig; repeatable")
	fs.BoolVar(&o.AllowCrossOriginEndpoints, "allow-cross-origin-endpoints", false, "accept device authorization and token endpoints that discovery names on another origin than the issuer")
	fs.BoolVar(&o.InsecureSkipTLSVerify, "insecure-skip-tls-verify", false, "do not check the provider's certificate (for tests only)")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", plugin.DefaultRequestTimeout, "longest wait for one answer from the provider")
	cacheFlags(fs, v)
}

func cacheFlags(fs *pflag.FlagSet, v *values) {
	fs.StringVar(&v.o.CacheDir, "cache-dir", "", "directory for sessions (default "+plugin.DefaultCacheDir()+")")
	fs.StringVar(&v.o.TokenCache, "token-cache", plugin.TokenCacheDisk, "where sessions are kept (disk: files in the cache directory; keyring: the OS keychain, disk with a warning when it cannot be used; none: nothing kept, a sign-in on every run)")
	fs.BoolVarP(&v.verbose, "verbose", "v", false, "describe each step on stderr (never prints tokens)")
}

// signInFlags shape the sign-in itself.
func signInFlags(fs *pflag.FlagSet, v *values) {
	fs.DurationVar(&v.o.RefreshMargin, "refresh-margin", plugin.DefaultRefreshMargin, "refresh this long before the token expires (at most half its lifetime)")
	fs.DurationVar(&v.o.LockTimeout, "lock-timeout", plugin.DefaultLockTimeout, "longest wait for another sign-in or refresh of the same session")
	fs.StringVar(&v.qr, "qr", terminal.QRAuto, "QR code of the sign-in address (auto: on a terminal, when it fits)")
	fs.BoolVar(&v.openBrowser, "open-browser", false, "also open the sign-in address in this machine's browser")
}

// printFlags lists cmd's flags for people: name, the kind of value, what
// it does, and its default when that is not obvious.
func printFlags(w io.Writer, cmd command, fs *pflag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fs.VisitAll(func(f *pflag.Flag) {
		name := "      --" + f.Name
		if f.Shorthand != "" {
			name = "  -" + f.Shorthand + ", --" + f.Name
		}
		kind, _ := pflag.UnquoteUsage(f)
		usage := describe(cmd, f)
		switch kind {
		case "bool":
			kind = ""
		case "stringArray":
			kind = "string"
		}
		if kind != "" {
			name += " " + kind
		}
		switch f.DefValue {
		case "", "false", "[]", "0s":
		default:
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, usage)
	})
	tw.Flush()
}

// describe is what a flag does, as help and completion show it: its
// usage and, for a flag that takes one of a few values, the list of them.
// The list is added here, when it is shown, not when the flags are
// defined: building those strings cost every get-token about 40 µs,
// measured (each a first allocation in a fresh heap).
func describe(cmd command, f *pflag.Flag) string {
	if values := enumerated(cmd, f); takesValue(f) && values != nil {
		return f.Usage + ": " + strings.Join(values, ", ")
	}
	return f.Usage
}
