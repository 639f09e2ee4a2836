// Package setup writes kubeconfig user entries that run the plugin, and
// converts those of int128/kubelogin (kubectl oidc-login).
package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// InstallHint is what kubectl shows when the plugin binary is missing. It
// names the routes that work today: krew from the release's manifest
// (the plugin is not in krew's index) and go install.
const InstallHint = `kubectl-device_login signs you in to this cluster. Install it with krew:
  kubectl krew install --manifest-url=https://github.com/devicelogin/kubectl-device-login/releases/latest/download/device-login.yaml
or with Go:
  go install github.com/devicelogin/kubectl-device-login/cmd/kubectl-device_login@latest
`

// Options configure Setup.
type Options struct {
	// Login holds the sign-in settings; they are checked like get-token's.
	Login plugin.Options
	// Args are the get-token flags to store in the kubeconfig, as given
	// on the command line ("--name=value").
	Args []string
	// User is the kubeconfig user entry to write (default "device-login").
	User string
	// Context, when set, is pointed at User. A context that does not
	// exist yet is created only when Cluster names its cluster.
	Context string
	// Cluster, when set, is the cluster Context uses; it must exist.
	Cluster string
	// Kubeconfig is the file to edit; empty means the one kubectl uses
	// ($KUBECONFIG or ~/.kube/config).
	Kubeconfig string
	// Command is the exec command (default "kubectl-device_login").
	Command string
	// ProvideClusterInfo sets provideClusterInfo, so that issuer, client
	// and scopes can come from each cluster's extension.
	ProvideClusterInfo bool
	// DryRun prints what would be done without doing it.
	DryRun bool
	// FromKubelogin converts users of `kubectl oidc-login get-token`.
	FromKubelogin bool
	// Stdout receives the dry-run plan; Stderr the report.
	Stdout, Stderr io.Writer
}

func (so *Options) defaults() {
	if so.User == "" {
		so.User = "device-login"
	}
	if so.Command == "" {
		so.Command = "kubectl-device_login"
	}
	if so.Stdout == nil {
		so.Stdout = io.Discard
	}
	if so.Stderr == nil {
		so.Stderr = io.Discard
	}
}

// entry is one user entry to write: its name, the exec arguments, and the
// client secret to keep in the exec block's env (empty: none).
type entry struct {
	name   string
	args   []string
	secret plugin.Secret
}

// Setup writes a kubeconfig user entry that runs the plugin, through
// `kubectl config set-credentials` (so kubectl decides which file and how
// it is written), then sets what set-credentials cannot carry (the
// installHint, and a client secret in env rather than on kubectl's
// command line), optionally points a context at the user, and reads it
// all back. A step that fails undoes the others.
func Setup(ctx context.Context, so Options) error {
	so.defaults()
	for _, f := range []struct{ flag, v string }{
		{"--user", so.User}, {"--context", so.Context}, {"--cluster", so.Cluster},
		{"--command", so.Command}, {"--kubeconfig", so.Kubeconfig},
	} {
		if !plainText(f.v) {
			return fmt.Errorf("%s %s holds control or invisible characters; give it as plain text", f.flag, show(f.v))
		}
	}
	if so.FromKubelogin {
		if so.Context != "" || so.Cluster != "" {
			return errors.New("--from-kubelogin keeps the contexts as they are; leave out --context and --cluster")
		}
		return setupFromKubelogin(ctx, so)
	}
	if so.Cluster != "" && so.Context == "" {
		return errors.New("--cluster names the cluster of --context; give --context too")
	}
	e, err := so.entry()
	if err != nil {
		return err
	}
	o := so.Login
	if so.ProvideClusterInfo && o.IssuerURL == "" {
		o.IssuerURL, o.ClientID = "https://cluster-extension.invalid", "from-cluster-extension"
	}
	s, err := plugin.Resolve(o)
	if err != nil {
		return err
	}
	view, err := so.view(ctx)
	if err != nil {
		return err
	}
	ctxCmd, err := so.contextCommand(view, e.name)
	if err != nil {
		return err
	}
	if e.secret == "" && s.ClientSecret != "" && so.Login.ClientSecretFile == "" {
		fmt.Fprintf(so.Stderr, "Note: the client secret in $%s is not stored; kubectl passes its environment on to the plugin, so set it wherever kubectl runs.\n", plugin.ClientSecretEnv)
	}
	if e.secret != "" {
		fmt.Fprintf(so.Stderr, "Note: the client secret is stored in the kubeconfig in plain text (in the exec environment %s, not in the arguments); public clients need none, and --client-secret-file keeps it in a file of its own.\n", plugin.ClientSecretEnv)
	}
	if !so.ProvideClusterInfo || so.Login.IssuerURL != "" {
		checkProvider(ctx, s, so.Stderr)
	}
	return so.write(ctx, view, []entry{e}, ctxCmd)
}

// entry is the user entry of a plain setup: the get-token flags, with a
// client secret given by flag moved out of them.
func (so *Options) entry() (entry, error) {
	e := entry{name: so.User, args: []string{"get-token"}, secret: plugin.Secret(so.Login.ClientSecret)}
	for _, a := range so.Args {
		if strings.HasPrefix(a, "--client-secret=") {
			continue
		}
		if !plainText(a) {
			return e, fmt.Errorf("the flag %s holds control or invisible characters; give it as plain text", show(a))
		}
		e.args = append(e.args, a)
	}
	if !plainText(string(e.secret)) {
		return e, errors.New("the client secret holds control or invisible characters")
	}
	return e, nil
}

// checkProvider warns when the provider cannot be used for device logins.
func checkProvider(ctx context.Context, s *plugin.Settings, w io.Writer) {
	p, err := s.Provider(terminal.New(nil, terminal.Options{}))
	if err == nil {
		_, err = p.Endpoints(ctx)
	}
	if err != nil {
		fmt.Fprintf(w, "Warning: %s\n", terminal.Sanitize(err.Error(), 1000))
	}
}

// setCredentials is the kubectl command that writes an entry's exec block
// but for what execEdit sets: flags first and the name after "--" (which
// kubectl 1.27 and later accept), so that a name that looks like a flag
// stays a name.
func (so *Options) setCredentials(e entry) []string {
	cmd := []string{"config", "set-credentials",
		"--exec-api-version=" + plugin.APIVersionV1,
		"--exec-command=" + so.Command,
	}
	// kubectl reads --exec-arg as CSV (--exec-env is a plain list).
	for _, a := range e.args {
		cmd = append(cmd, "--exec-arg="+csvField(a))
	}
	return append(cmd, "--", e.name)
}

// contextCommand is the kubectl command that points so.Context at user,
// or nil without --context. It refuses to leave a context without a
// cluster: kubectl would then send requests to localhost:8080.
func (so *Options) contextCommand(view *kubeconfigJSON, user string) ([]string, error) {
	if so.Context == "" {
		return nil, nil
	}
	cur := view.context(so.Context)
	switch {
	case so.Cluster != "" && !view.hasCluster(so.Cluster):
		return nil, fmt.Errorf("there is no cluster %s in %s (%s); add it with kubectl config set-cluster first", show(so.Cluster), so.describeKubeconfig(), view.clusterList())
	case so.Cluster == "" && cur == nil:
		return nil, fmt.Errorf("there is no context %s in %s: name the cluster it should use with --cluster (%s), or leave out --context", show(so.Context), so.describeKubeconfig(), view.clusterList())
	case so.Cluster == "" && cur.Context.Cluster == "":
		return nil, fmt.Errorf("the context %s in %s names no cluster: give it one with --cluster (%s)", show(so.Context), so.describeKubeconfig(), view.clusterList())
	}
	cmd := []string{"config", "set-context", "--user=" + user}
	if so.Cluster != "" {
		cmd = append(cmd, "--cluster="+so.Cluster)
	}
	return append(cmd, "--", so.Context), nil
}

// write writes entries and runs ctxCmd (contextCommand's, nil for none;
// only with one entry, which it points the context at), or with DryRun
// prints the plan. view is the kubeconfig as it was before.
func (so *Options) write(ctx context.Context, view *kubeconfigJSON, entries []entry, ctxCmd []string) error {
	if so.DryRun {
		so.printPlan(entries, ctxCmd)
		return nil
	}
	files := so.kubeconfigFiles()
	saved := snapshot(files)
	err := so.apply(ctx, files, view, entries, ctxCmd)
	if err != nil {
		if rerr := saved.restore(); rerr != nil {
			return fmt.Errorf("%v; restoring the kubeconfig failed too (%v): check %s", err, rerr, so.describeKubeconfig())
		}
		return fmt.Errorf("%v; the kubeconfig was left as it was", err)
	}
	for _, e := range entries {
		fmt.Fprintf(so.Stderr, "Wrote user %s to %s", show(e.name), so.describeKubeconfig())
		if ctxCmd != nil {
			fmt.Fprintf(so.Stderr, " and pointed context %s at it", show(so.Context))
		}
		fmt.Fprintln(so.Stderr, ".")
	}
	return nil
}

// apply runs each step and then reads the result back through kubectl,
// which is the judge of what the kubeconfig says. files are the
// kubeconfig files (kubeconfigFiles).
func (so *Options) apply(ctx context.Context, files []string, before *kubeconfigJSON, entries []entry, ctxCmd []string) error {
	for _, e := range entries {
		if _, err := so.kubectl(ctx, so.setCredentials(e)...); err != nil {
			return err
		}
		if err := editExec(files, e.name, so.execEdit(e)); err != nil {
			return fmt.Errorf("cannot finish the user entry %s: %v", show(e.name), err)
		}
	}
	if ctxCmd != nil {
		if _, err := so.kubectl(ctx, ctxCmd...); err != nil {
			return err
		}
	}
	after, err := so.view(ctx)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := so.check(after, before, e); err != nil {
			return err
		}
	}
	if ctxCmd != nil {
		c := after.context(so.Context)
		switch {
		case c == nil || c.Context.User != entries[0].name:
			return fmt.Errorf("kubectl config set-context did not point context %s at user %s", show(so.Context), show(entries[0].name))
		case c.Context.Cluster == "" || so.Cluster != "" && c.Context.Cluster != so.Cluster:
			return fmt.Errorf("kubectl config set-context left context %s without the cluster it should use", show(so.Context))
		}
	}
	return nil
}

// execEdit is what setup sets in e's exec block itself.
func (so *Options) execEdit(e entry) execEdit {
	return execEdit{installHint: InstallHint, interactiveMode: "Never", provideClusterInfo: so.ProvideClusterInfo, secret: string(e.secret)}
}

// check compares the user entry kubectl reads back with the one meant.
func (so *Options) check(after, before *kubeconfigJSON, e entry) error {
	u := after.user(e.name)
	var x *execJSON
	if u != nil {
		x = u.User.Exec
	}
	want := wantEnv(before.user(e.name), e.secret)
	var problem string
	switch {
	case x == nil:
		problem = "has no exec block"
	case x.Command != so.Command || x.APIVersion != plugin.APIVersionV1 || x.InteractiveMode != "Never" || x.ProvideClusterInfo != so.ProvideClusterInfo:
		problem = "does not run the plugin as it should"
	case !slices.Equal(x.Args, e.args):
		problem = "does not hold the arguments it should"
	case x.InstallHint != InstallHint:
		problem = "lacks the installHint"
	case !slices.Equal(x.Env, want):
		problem = "does not hold the environment it should"
	}
	if problem != "" {
		return fmt.Errorf("after writing, the user entry %s %s (as kubectl config view reads it)", show(e.name), problem)
	}
	return nil
}

// wantEnv is the environment an entry must end up with: what it had,
// without an older client secret, plus the new one.
func wantEnv(u *userJSON, secret plugin.Secret) []envJSON {
	var out []envJSON
	if u != nil && u.User.Exec != nil {
		for _, v := range u.User.Exec.Env {
			if v.Name != plugin.ClientSecretEnv {
				out = append(out, v)
			}
		}
	}
	if secret != "" {
		out = append(out, envJSON{Name: plugin.ClientSecretEnv, Value: string(secret)})
	}
	return out
}

// editExec finds the file that holds user (the first of the kubeconfig
// files, as kubectl decides) and edits its exec block there.
func editExec(files []string, user string, e execEdit) error {
	for _, path := range files {
		err := editFile(path, user, e)
		if errors.Is(err, errNoUser) || errors.Is(err, os.ErrNotExist) {
			continue
		}
		return err
	}
	return errors.New("kubectl config set-credentials did not write it")
}

func (so *Options) kubectlArgs(args []string) []string {
	out := []string{"kubectl"}
	if so.Kubeconfig != "" {
		out = append(out, "--kubeconfig="+so.Kubeconfig)
	}
	return append(out, args...)
}

// kubectl runs kubectl and returns its stdout; its stderr is part of the
// error.
func (so *Options) kubectl(ctx context.Context, args ...string) ([]byte, error) {
	full := so.kubectlArgs(args)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("%s %s failed: %s", filepath.Base(full[0]), strings.Join(args[:min(2, len(args))], " "), terminal.Sanitize(msg, 300))
	}
	return stdout.Bytes(), nil
}

// view reads the kubeconfig as kubectl sees it.
func (so *Options) view(ctx context.Context) (*kubeconfigJSON, error) {
	out, err := so.kubectl(ctx, "config", "view", "--raw", "-o", "json")
	if err != nil {
		return nil, err
	}
	return parseKubeconfigJSON(out)
}

func (so *Options) describeKubeconfig() string {
	if so.Kubeconfig != "" {
		return terminal.Sanitize(so.Kubeconfig, 200)
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		return "the kubeconfig in $KUBECONFIG"
	}
	return "~/.kube/config"
}

// kubeconfigFiles are the files kubectl may write to, in its order.
func (so *Options) kubeconfigFiles() []string {
	if so.Kubeconfig != "" {
		return []string{so.Kubeconfig}
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		var out []string
		for _, f := range filepath.SplitList(env) {
			if f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	return []string{filepath.Join(home, ".kube", "config")}
}

// csvField quotes s as one CSV field when it holds a comma, a quote or a
// line break, or is empty, as kubectl's --exec-arg expects.
func csvField(s string) string {
	if s != "" && !strings.ContainsAny(s, ",\"\r\n") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// printPlan prints what write would do as a shell script: commands with
// every word quoted, and comments of one line each whose words from a
// kubeconfig are quoted too, so that the plan piped to sh runs the
// kubectl commands and nothing else. It never shows a client secret.
func (so *Options) printPlan(entries []entry, ctxCmd []string) {
	comment := func(format string, a ...any) {
		fmt.Fprintf(so.Stdout, "# %s\n", terminal.Sanitize(fmt.Sprintf(format, a...), 4000))
	}
	for _, e := range entries {
		comment("user %s: would run", plugin.ShellQuote(e.name))
		fmt.Fprintln(so.Stdout, plugin.ShellJoin(so.kubectlArgs(so.setCredentials(e))))
		x := so.execEdit(e)
		comment("then set in users[%s].user.exec of the kubeconfig:", plugin.ShellQuote(e.name))
		comment("  interactiveMode: %s", x.interactiveMode)
		comment("  provideClusterInfo: %t", x.provideClusterInfo)
		comment("  installHint: |")
		for _, line := range strings.Split(strings.TrimSpace(x.installHint), "\n") {
			comment("    %s", line)
		}
		if x.secret != "" {
			comment("  env: %s=(hidden)", plugin.ClientSecretEnv)
		}
	}
	if ctxCmd != nil {
		fmt.Fprintln(so.Stdout, plugin.ShellJoin(so.kubectlArgs(ctxCmd)))
	}
}
