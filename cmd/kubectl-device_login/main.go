// Command kubectl-device_login is a kubectl credential plugin that signs
// people in with the OAuth 2.0 Device Authorization Grant. kubectl runs it
// as `kubectl-device_login get-token ...` from a kubeconfig exec block; a
// person runs it as `kubectl device-login ...`. This file only wires
// command-line flags to package plugin.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/devicelogin/kubectl-device-login/plugin"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name, summary, usage string
	run                  func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch.
type env struct {
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{"get-token", "print a credential for kubectl (run by kubectl, not by hand)", getTokenUsage, runGetToken},
		{"login", "sign in now, in this terminal", loginUsage, runLogin},
		{"version", "print the version", "Usage: kubectl device-login version\n", runVersion},
	}
}

const topUsage = `kubectl device-login signs you in to Kubernetes clusters with your identity
provider's device login: it shows a short code and a URL; you approve on any
device with a browser (phone, laptop); kubectl gets a token.

Usage:
  kubectl device-login <command> [flags]

Commands:
%s
Run 'kubectl device-login <command> --help' for a command's flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stderr
		if len(args) > 0 {
			w = stdout
		}
		fmt.Fprintf(w, topUsage, commandList())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, cmd := range commands() {
		if cmd.name != args[0] {
			continue
		}
		err := cmd.run(ctx, e, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, pflag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.Is(err, context.Canceled):
			fmt.Fprintln(stderr, "device-login: interrupted; nothing was changed, run the command again when ready")
			return 130
		default:
			fmt.Fprintf(stderr, "device-login: %v\n", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "device-login: unknown command %q; run 'kubectl device-login --help' for the list\n", plugin.Sanitize(args[0], 60))
	return 2
}

func commandList() string {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	return b.String()
}

// errUsage is returned after a usage error was printed.
var errUsage = errors.New("usage error")

// parse parses flags, printing one clear line and the usage on error.
func parse(fs *pflag.FlagSet, e *env, usage string, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprint(e.stdout, usage)
		fmt.Fprintln(e.stdout, "\nFlags:")
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "device-login: %s\n\n", plugin.Sanitize(err.Error(), 200))
		fmt.Fprint(e.stderr, usage)
		fmt.Fprintf(e.stderr, "Run 'kubectl device-login %s --help' for all flags.\n", fs.Name())
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "device-login: unexpected argument %q\n\n", plugin.Sanitize(fs.Arg(0), 60))
		fmt.Fprint(e.stderr, usage)
		return errUsage
	}
	return nil
}

// loginFlags registers the flags shared by get-token and login.
func loginFlags(fs *pflag.FlagSet, o *plugin.Options) {
	fs.StringVar(&o.IssuerURL, "issuer-url", "", "OpenID provider's issuer URL (https, or http on loopback)")
	fs.StringVar(&o.ClientID, "client-id", "", "OAuth 2.0 client ID registered for kubectl")
	fs.StringVar(&o.ClientSecret, "client-secret", "", "client secret, for confidential clients only (public clients need none)")
	fs.StringArrayVar(&o.Scopes, "scope", nil, "scope to request; repeat for several (default openid and offline_access)")
	fs.StringArrayVar(&o.ExtraParams, "extra-param", nil, "name=value sent with the device authorization request, e.g. audience=kubernetes; repeatable")
	fs.StringVar(&o.Token, "token", plugin.TokenAccess, "token to give kubectl: access_token or id_token")
	fs.StringVar(&o.DeviceAuthorizationEndpoint, "device-authorization-endpoint", "", "device authorization endpoint, for providers without discovery")
	fs.StringVar(&o.TokenEndpoint, "token-endpoint", "", "token endpoint, for providers without discovery")
	fs.StringArrayVar(&o.CertificateAuthorities, "certificate-authority", nil, "PEM file of a CA to trust for the provider, besides the system's; repeatable")
	fs.BoolVar(&o.InsecureSkipTLSVerify, "insecure-skip-tls-verify", false, "do not check the provider's certificate (for tests only)")
	fs.StringVar(&o.CacheDir, "cache-dir", "", "directory for sessions (default "+plugin.DefaultCacheDir()+")")
	fs.DurationVar(&o.RefreshMargin, "refresh-margin", plugin.DefaultRefreshMargin, "refresh this long before the token expires (at most half its lifetime)")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", plugin.DefaultRequestTimeout, "longest wait for one answer from the provider")
	fs.DurationVar(&o.LockTimeout, "lock-timeout", plugin.DefaultLockTimeout, "longest wait for another sign-in or refresh of the same session")
	fs.DurationVar(&o.RememberFailure, "remember-failure", plugin.DefaultRememberFailure, "repeat a failed sign-in to kubectl's re-runs and background callers for this long instead of retrying (0 disables)")
	fs.BoolVarP(&o.Verbose, "verbose", "v", false, "describe each step on stderr (never prints tokens)")
}

const getTokenUsage = `Usage: kubectl-device_login get-token --issuer-url=URL --client-id=ID [flags]

Prints an ExecCredential for kubectl on stdout. The token comes from the
cache when fresh, else from a refresh, else from a device login shown on
stderr. kubectl runs this from the kubeconfig's exec block.
`

func runGetToken(ctx context.Context, e *env, args []string) error {
	var o plugin.Options
	fs := pflag.NewFlagSet("get-token", pflag.ContinueOnError)
	loginFlags(fs, &o)
	fs.StringVar(&o.DeviceLogin, "device-login", plugin.DeviceLoginAuto, "when to start a device login: auto (when someone can see stderr), always, never")
	fs.StringVarP(&o.Output, "output", "o", plugin.OutputJSON, "json (an ExecCredential) or token (the bare token, for scripts)")
	if err := parse(fs, e, getTokenUsage, args); err != nil {
		return err
	}
	if o.RememberFailure == 0 {
		o.RememberFailure = -1
	}
	o.ExecInfo = os.Getenv("KUBERNETES_EXEC_INFO")
	o.Stdout, o.Stderr = e.stdout, e.stderr
	o.StderrIsTerminal = isTerminal(e.stderr)
	return plugin.GetToken(ctx, o)
}

const loginUsage = `Usage: kubectl device-login login --issuer-url=URL --client-id=ID [flags]

Signs you in now with a device login in this terminal and caches the
session for kubectl. Use the same flags as in your kubeconfig.
`

func runLogin(ctx context.Context, e *env, args []string) error {
	var o plugin.Options
	fs := pflag.NewFlagSet("login", pflag.ContinueOnError)
	loginFlags(fs, &o)
	if err := parse(fs, e, loginUsage, args); err != nil {
		return err
	}
	o.Stdout, o.Stderr = e.stdout, e.stderr
	o.StderrIsTerminal = isTerminal(e.stderr)
	return plugin.Login(ctx, o)
}

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
	if err := parse(fs, e, "Usage: kubectl device-login version\n", args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "kubectl-device-login %s (commit %s)\n", version, commit)
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
