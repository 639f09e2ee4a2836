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
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cli/browser"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/logout"
	"github.com/devicelogin/kubectl-device-login/plugin/setup"
	"github.com/devicelogin/kubectl-device-login/plugin/status"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx := &interruptible{}
	code := run(ctx, commandLine(os.Args), os.Stdout, os.Stderr)
	ctx.stop()
	os.Exit(code)
}

// interruptible is a context that Ctrl-C (SIGINT) or SIGTERM cancels. It
// starts listening for the signals only when first asked whether it is
// done: a cache hit never asks, and so never pays for the signal
// handling's goroutine and the threads its start leads to (about a
// tenth of a cache hit's time). Until then a signal ends the process as
// usual, which is harmless: nothing is written before something waits.
type interruptible struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *interruptible) listen() context.Context {
	c.once.Do(func() {
		c.ctx, c.cancel = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	})
	return c.ctx
}

func (c *interruptible) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *interruptible) Done() <-chan struct{}       { return c.listen().Done() }
func (c *interruptible) Err() error                  { return c.listen().Err() }
func (c *interruptible) Value(key any) any           { return nil }

// stop stops listening, if it started.
func (c *interruptible) stop() {
	if c.cancel != nil {
		c.cancel()
	}
}

// command is one subcommand: its flags, its help and what it runs.
type command struct {
	name, summary, usage string
	flags                func(fs *pflag.FlagSet, v *values)
	run                  func(ctx context.Context, e *env, fs *pflag.FlagSet, v *values) error
}

// values holds every flag's destination.
type values struct {
	o             plugin.Options
	verbose       bool
	force, all    bool
	output        string
	qr            string
	openBrowser   bool
	user, ctx     string
	cluster       string
	kubeconfig    string
	command       string
	clusterInfo   bool
	dryRun        bool
	fromKubelogin bool
}

// env is what a command may touch.
type env struct {
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{"get-token", "print a credential for kubectl (kubectl runs this, not you)", getTokenUsage, getTokenFlags, runGetToken},
		{"login", "sign in now, in this terminal", loginUsage, loginCmdFlags, runLogin},
		{"logout", "delete a cached session and revoke it at the provider", logoutUsage, logoutFlags, runLogout},
		{"status", "list cached sessions (never shows tokens)", statusUsage, statusFlags, runStatus},
		{"setup", "add a user entry that runs this plugin to your kubeconfig", setupUsage, setupFlags, runSetup},
		{"version", "print the version", "Usage: kubectl device-login version\n", func(*pflag.FlagSet, *values) {}, runVersion},
		{"completion", completionSummary, completionUsage, func(*pflag.FlagSet, *values) {}, runCompletion},
	}
}

const topUsage = `kubectl device-login signs you in to Kubernetes clusters with your identity
provider's device login: it shows an address and a short code; you approve on
any device that has a browser (a phone, a laptop), and kubectl gets a token.

Usage:
  kubectl device-login <command> [flags]

Commands:
%s
First time? Run 'kubectl device-login setup --help'.
Run 'kubectl device-login <command> --help' for a command's flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) > 0 && args[0] == completeCommand {
		return runComplete(ctx, e, args[1:])
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		fmt.Fprintf(w, topUsage, commandList())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" {
		args = []string{"version"}
	}
	for _, cmd := range commands() {
		if cmd.name != args[0] {
			continue
		}
		var v values
		fs := flagSet(cmd, &v)
		err := parse(fs, e, cmd, args[1:])
		if err == nil {
			err = checkValues(&v)
		}
		if err == nil {
			err = cmd.run(ctx, e, fs, &v)
		}
		switch {
		case err == nil, errors.Is(err, pflag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.Is(err, context.Canceled):
			fmt.Fprintln(stderr, "device-login: interrupted; nothing was changed, run the command again when ready")
			return 130
		default:
			// The one place errors are printed: whatever they quote
			// (a provider's words, a kubeconfig's names) is sanitized.
			fmt.Fprintf(stderr, "device-login: %s\n", terminal.Sanitize(err.Error(), 4000))
			return 1
		}
	}
	fmt.Fprintf(stderr, "device-login: unknown command %q; run 'kubectl device-login --help' for the list\n", terminal.Sanitize(args[0], 60))
	return 2
}

// flagSet is a command's flag set, each flag writing to its field of v;
// help and completion, which read only the flags, give a v of their own.
func flagSet(cmd command, v *values) *pflag.FlagSet {
	fs := pflag.NewFlagSet(cmd.name, pflag.ContinueOnError)
	fs.SortFlags = false
	cmd.flags(fs, v)
	return fs
}

func commandList() string {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.summary)
	}
	return b.String()
}

// errUsage is returned after a usage error was printed.
var errUsage = errors.New("usage error")

// parse parses cmd's flags, printing one clear line and the usage on
// error. Positional arguments are refused unless cmd takes them.
func parse(fs *pflag.FlagSet, e *env, cmd command, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := emptyInline(fs, args)
	if err == nil {
		err = fs.Parse(args)
	}
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprint(e.stdout, cmd.usage)
		if fs.HasFlags() {
			fmt.Fprintln(e.stdout, "\nFlags:")
			printFlags(e.stdout, cmd, fs)
		}
		return err
	}
	if err == nil && fs.NArg() > 0 && !takesArguments(cmd) {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil {
		err = emptyValue(fs)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "device-login: %s\n\n", terminal.Sanitize(err.Error(), 200))
		fmt.Fprint(e.stderr, cmd.usage)
		fmt.Fprintf(e.stderr, "\nRun 'kubectl device-login %s --help' for all flags.\n", fs.Name())
		return errUsage
	}
	return nil
}

const getTokenUsage = `Usage: kubectl-device_login get-token --issuer-url=URL --client-id=ID [flags]

Prints an ExecCredential for kubectl on stdout. The token comes from the
cache when fresh, else from a refresh, else from a device login shown on
stderr. kubectl runs this from the kubeconfig's exec block; scripts can use
-o token for the bare token, e.g.
  curl -H "Authorization: Bearer $(kubectl-device_login get-token ... -o token)" ...
`

func getTokenFlags(fs *pflag.FlagSet, v *values) {
	identityFlags(fs, &v.o)
	signInFlags(fs, v)
	fs.StringVar(&v.o.DeviceLogin, "device-login", plugin.DeviceLoginAuto, "when to start a device login (auto: when someone can see stderr)")
	fs.DurationVar(&v.o.RememberFailure, "remember-failure", plugin.DefaultRememberFailure, "repeat a failed sign-in to kubectl's re-runs and background callers for this long instead of retrying (0 disables)")
	fs.StringVarP(&v.o.Output, "output", "o", plugin.OutputJSON, "what to print (json: an ExecCredential; token: the bare token, for scripts)")
	transportFlags(fs, v)
}

func runGetToken(ctx context.Context, e *env, fs *pflag.FlagSet, v *values) error {
	growStack()
	if v.o.RememberFailure == 0 {
		v.o.RememberFailure = -1
	}
	v.o.ExecInfo = os.Getenv("KUBERNETES_EXEC_INFO")
	s, t, err := prepare(e, v)
	if err != nil {
		return err
	}
	cred, err := plugin.GetToken(ctx, s, t)
	if err != nil {
		return err
	}
	// The one place that writes the credential.
	if err := cred.Write(e.stdout); err != nil {
		return fmt.Errorf("cannot write the credential to stdout: %v", err)
	}
	return nil
}

// growStack makes the goroutine's stack big enough for a cache hit while
// only three frames are on it. A goroutine starts with a small stack; when
// a call needs more, the runtime copies the stack to one twice the size
// and looks up the stack map of every frame on it, in parts of the binary
// that a two-millisecond process has not paged in yet. Left alone, a hit
// grows its stack once, deep in the settings or the session read; growing
// it here instead took 40 to 60 µs off the hit's own work (the row of that
// name in make bench).
//
//go:noinline
func growStack() byte {
	var b [4 << 10]byte
	return last(b[:])
}

//go:noinline
func last(b []byte) byte { return b[len(b)-1] }

// prepare fills the options that come from the process, not from flags,
// resolves them, and makes the terminal for stderr.
func prepare(e *env, v *values) (*plugin.Settings, *terminal.Terminal, error) {
	t := newTerminal(e, v)
	v.o.StderrIsTerminal = t.IsTerminal()
	s, err := plugin.Resolve(v.o)
	return s, t, err
}

// checkValues checks, for every command, the flag values that neither
// pflag nor plugin.Resolve checks: --qr, which only the terminal reads,
// and which setup stores for every later get-token.
func checkValues(v *values) error {
	if v.qr != "" && !slices.Contains(plugin.Allowed("qr"), v.qr) {
		return fmt.Errorf("--qr must be %s, not %q", strings.Join(plugin.Allowed("qr"), ", "), terminal.Sanitize(v.qr, 40))
	}
	return nil
}

// newTerminal is stderr, as the person sees it.
func newTerminal(e *env, v *values) *terminal.Terminal {
	isTerm := isTerminal(e.stderr)
	o := terminal.Options{
		IsTerminal: isTerm,
		Color:      isTerm && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb",
		Verbose:    v.verbose,
		QR:         v.qr,
	}
	if v.openBrowser {
		o.OpenBrowser = func(url string) error {
			// Whatever the browser launcher prints stays off stdout.
			browser.Stdout, browser.Stderr = io.Discard, io.Discard
			return browser.OpenURL(url)
		}
	}
	return terminal.New(e.stderr, o)
}

const loginUsage = `Usage: kubectl device-login login --issuer-url=URL --client-id=ID [flags]

Signs you in now with a device login in this terminal, caches the session
for kubectl, and says who you are signed in as. Use the same flags as in
your kubeconfig's get-token arguments.
`

func loginCmdFlags(fs *pflag.FlagSet, v *values) {
	identityFlags(fs, &v.o)
	fs.BoolVar(&v.force, "force", false, "discard the cached session and sign in again")
	signInFlags(fs, v)
	transportFlags(fs, v)
}

func runLogin(ctx context.Context, e *env, fs *pflag.FlagSet, v *values) error {
	s, t, err := prepare(e, v)
	if err != nil {
		return err
	}
	return plugin.Login(ctx, s, t, v.force)
}

const logoutUsage = `Usage: kubectl device-login logout --issuer-url=URL --client-id=ID [flags]
       kubectl device-login logout --all

Deletes the cached session for the given flags (or every session with --all)
and revokes its refresh token at the provider, when the provider offers a
revocation endpoint. A provider that cannot be reached does not stop it.
`

func logoutFlags(fs *pflag.FlagSet, v *values) {
	identityFlags(fs, &v.o)
	fs.BoolVar(&v.all, "all", false, "sign out of every cached session")
	transportFlags(fs, v)
}

func runLogout(ctx context.Context, e *env, fs *pflag.FlagSet, v *values) error {
	if v.all {
		switch {
		case v.o.IssuerURL != "" || v.o.ClientID != "":
			return fmt.Errorf("--all signs out of every session; leave out --issuer-url and --client-id, or leave out --all")
		case v.o.ClientSecret != "" || v.o.ClientSecretFile != "":
			return fmt.Errorf("--all does not take a client secret, which would go to every provider in the cache; sign out of a confidential client's session with logout --issuer-url=… --client-id=… and its secret")
		}
		s, err := plugin.ResolveCache(v.o)
		if err != nil {
			return err
		}
		return logout.All(ctx, s, newTerminal(e, v))
	}
	s, t, err := prepare(e, v)
	if err != nil {
		return err
	}
	return logout.Logout(ctx, s, t)
}

const statusUsage = `Usage: kubectl device-login status [-o json] [--cache-dir=DIR] [--token-cache=keyring]

Lists the cached sessions, on disk and in the keyring: issuer, client,
scopes, who is signed in, until when, whether a refresh token is held, and
where. Never prints a token. With --token-cache=keyring it also says
whether the keyring can be used now.
`

func statusFlags(fs *pflag.FlagSet, v *values) {
	fs.StringVarP(&v.output, "output", "o", status.Formats()[0], "what to print")
	cacheFlags(fs, v)
}

func runStatus(ctx context.Context, e *env, fs *pflag.FlagSet, v *values) error {
	s, err := plugin.ResolveCache(v.o)
	if err != nil {
		return err
	}
	return status.Status(ctx, s, newTerminal(e, v), e.stdout, v.output)
}

const setupUsage = `Usage: kubectl device-login setup --issuer-url=URL --client-id=ID [flags]
       kubectl device-login setup --from-kubelogin

Adds (or updates) a kubeconfig user that runs this plugin, with kubectl
config set-credentials: apiVersion client.authentication.k8s.io/v1,
interactiveMode Never (a device login needs no keyboard), the get-token
arguments you give here, and an installHint. --context points a context at
it (--cluster names the cluster of a new one). --dry-run only prints what
would be done.

--from-kubelogin converts users that run 'kubectl oidc-login get-token'
(int128/kubelogin) and reports the flags that do not carry over.

Example:
  kubectl device-login setup --issuer-url=https://auth.example.com \
      --client-id=kubectl --user=olympus --context=prod
`

func setupFlags(fs *pflag.FlagSet, v *values) {
	identityFlags(fs, &v.o)
	fs.StringVar(&v.user, "user", "device-login", "name of the kubeconfig user entry to write")
	fs.StringVar(&v.ctx, "context", "", "point this kubeconfig context at the user (a new context needs --cluster)")
	fs.StringVar(&v.cluster, "cluster", "", "cluster of the --context (needed when the context does not exist yet)")
	fs.StringVar(&v.kubeconfig, "kubeconfig", "", "kubeconfig file to change (default: the one kubectl uses)")
	fs.StringVar(&v.command, "command", "kubectl-device_login", "command kubectl runs (a name on PATH, or a full path)")
	fs.BoolVar(&v.clusterInfo, "provide-cluster-info", false, "let each cluster's client.authentication.k8s.io/exec extension give issuerURL, clientID and scopes")
	fs.BoolVar(&v.dryRun, "dry-run", false, "print what would be done, change nothing")
	fs.BoolVar(&v.fromKubelogin, "from-kubelogin", false, "convert users of 'kubectl oidc-login get-token'")
	fs.StringVar(&v.qr, "qr", "", "QR code setting to store")
	fs.BoolVar(&v.openBrowser, "open-browser", false, "store --open-browser in the user entry")
	fs.DurationVar(&v.o.RefreshMargin, "refresh-margin", plugin.DefaultRefreshMargin, "refresh margin to store")
	transportFlags(fs, v)
}

func runSetup(ctx context.Context, e *env, fs *pflag.FlagSet, v *values) error {
	// The flags given to setup that get-token takes too are stored as
	// get-token's arguments in the kubeconfig.
	getToken := flagSet(command{name: "get-token", flags: getTokenFlags}, &values{})
	var args []string
	fs.Visit(func(f *pflag.Flag) {
		if getToken.Lookup(f.Name) == nil {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, s := range sv.GetSlice() {
				args = append(args, "--"+f.Name+"="+s)
			}
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	if v.fromKubelogin && len(args) > 0 {
		return fmt.Errorf("--from-kubelogin takes its settings from the kubelogin entries; leave out the other flags")
	}
	return setup.Setup(ctx, setup.Options{
		Login: v.o, Args: args, User: v.user, Context: v.ctx, Cluster: v.cluster, Kubeconfig: v.kubeconfig,
		Command: v.command, ProvideClusterInfo: v.clusterInfo, DryRun: v.dryRun,
		FromKubelogin: v.fromKubelogin, Stdout: e.stdout, Stderr: e.stderr,
	})
}

func runVersion(ctx context.Context, e *env, fs *pflag.FlagSet, v *values) error {
	ver, rev := version, commit
	// `go install …@v0.1.0` stamps nothing with -X, but the module's
	// version (and, from a checkout, the VCS revision) is in the build
	// info.
	if bi, ok := debug.ReadBuildInfo(); ok && ver == "dev" {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			ver = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && rev == "unknown" {
				rev = s.Value
			}
		}
	}
	fmt.Fprintf(e.stdout, "kubectl-device-login %s (commit %s, %s, %s/%s)\n", ver, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
