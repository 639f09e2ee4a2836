// Package setup writes kubeconfig user entries that run the plugin, and
// converts those of int128/kubelogin (kubectl oidc-login).
package setup

import (
	"bytes"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// InstallHint is what kubectl shows when the plugin binary is missing.
const InstallHint = "kubectl-device-login signs you in to this cluster with a device login. " +
	"Install it with 'kubectl krew install device-login' (or from https://github.com/devicelogin/kubectl-device-login) " +
	"so that kubectl-device_login is on your PATH."

// Options configure Setup.
type Options struct {
	// Login holds the sign-in settings; they are checked like get-token's.
	Login plugin.Options
	// Args are the get-token flags to store in the kubeconfig, as given
	// on the command line ("--name=value").
	Args []string
	// User is the kubeconfig user entry to write (default "device-login").
	User string
	// Context, when set, is pointed at User (created when missing).
	Context string
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
	// Kubectl is the kubectl binary (default "kubectl").
	Kubectl string
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
	if so.Kubectl == "" {
		so.Kubectl = "kubectl"
	}
	if so.Stdout == nil {
		so.Stdout = io.Discard
	}
	if so.Stderr == nil {
		so.Stderr = io.Discard
	}
}

// Setup writes a kubeconfig user entry that runs the plugin, through
// `kubectl config set-credentials` (so kubectl decides which file and how
// it is written), then adds the installHint that set-credentials cannot
// set, and optionally points a context at the user.
func Setup(ctx context.Context, so Options) error {
	so.defaults()
	if so.FromKubelogin {
		return setupFromKubelogin(ctx, so)
	}
	o := so.Login
	if so.ProvideClusterInfo && o.IssuerURL == "" {
		o.IssuerURL, o.ClientID = "https://cluster-extension.invalid", "from-cluster-extension"
	}
	s, err := plugin.Resolve(o)
	if err != nil {
		return err
	}
	if o.ClientSecret != "" {
		fmt.Fprintln(so.Stderr, "Note: the client secret is stored in the kubeconfig in plain text; public clients need none.")
	}
	if !so.ProvideClusterInfo || so.Login.IssuerURL != "" {
		checkProvider(ctx, s, so.Stderr)
	}
	return so.writeUser(ctx, so.User, append([]string{"get-token"}, so.Args...), nil)
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

// writeUser runs set-credentials for user, adds the install hint, and sets
// the context. env, when not nil, is kept as the exec environment.
func (so *Options) writeUser(ctx context.Context, user string, args []string, env []string) error {
	cmd := []string{"config", "set-credentials", user,
		"--exec-api-version=" + plugin.APIVersionV1,
		"--exec-command=" + so.Command,
		"--exec-interactive-mode=Never",
		"--exec-provide-cluster-info=" + strconv.FormatBool(so.ProvideClusterInfo),
	}
	// kubectl reads these flags as CSV: quote values with commas or quotes.
	for _, a := range args {
		cmd = append(cmd, "--exec-arg="+csvField(a))
	}
	for _, e := range env {
		cmd = append(cmd, "--exec-env="+csvField(e))
	}
	var ctxCmd []string
	if so.Context != "" {
		ctxCmd = []string{"config", "set-context", so.Context, "--user=" + user}
	}
	if so.DryRun {
		fmt.Fprintf(so.Stdout, "# would run:\n%s\n", plugin.ShellJoin(so.kubectlArgs(cmd)))
		fmt.Fprintf(so.Stdout, "# then add to users[%s].user.exec in the kubeconfig:\n#   installHint: %s\n", user, strconv.Quote(InstallHint))
		if ctxCmd != nil {
			fmt.Fprintf(so.Stdout, "%s\n", plugin.ShellJoin(so.kubectlArgs(ctxCmd)))
		}
		return nil
	}
	if _, err := so.kubectl(ctx, cmd...); err != nil {
		return err
	}
	if err := so.addInstallHint(ctx, user); err != nil {
		fmt.Fprintf(so.Stderr, "Warning: could not add the installHint (%v); the user entry works without it.\n", err)
	}
	if ctxCmd != nil {
		if _, err := so.kubectl(ctx, ctxCmd...); err != nil {
			return err
		}
	}
	fmt.Fprintf(so.Stderr, "Wrote user %q to %s", user, so.describeKubeconfig())
	if so.Context != "" {
		fmt.Fprintf(so.Stderr, " and pointed context %q at it", so.Context)
	}
	fmt.Fprintln(so.Stderr, ".")
	return nil
}

func (so *Options) kubectlArgs(args []string) []string {
	out := []string{so.Kubectl}
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

func (so *Options) describeKubeconfig() string {
	if so.Kubeconfig != "" {
		return so.Kubeconfig
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		return "the kubeconfig in $KUBECONFIG"
	}
	return "~/.kube/config"
}

// kubeconfigFiles are the files kubectl may have written to.
func (so *Options) kubeconfigFiles() []string {
	if so.Kubeconfig != "" {
		return []string{so.Kubeconfig}
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		return filepath.SplitList(env)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	return []string{filepath.Join(home, ".kube", "config")}
}

// addInstallHint edits the YAML that kubectl just wrote: within the exec
// block of user it sets installHint, then checks with kubectl that the
// file still parses and says what was meant, restoring it otherwise.
func (so *Options) addInstallHint(ctx context.Context, user string) error {
	for _, path := range so.kubeconfigFiles() {
		old, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		edited, ok := insertInstallHint(old, user, InstallHint)
		if !ok {
			continue
		}
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		if err := cache.WriteFileAtomic(path, edited, st.Mode().Perm()); err != nil {
			return err
		}
		if hint, err := so.userInstallHint(ctx, user); err != nil || hint != InstallHint {
			if werr := cache.WriteFileAtomic(path, old, st.Mode().Perm()); werr != nil {
				return fmt.Errorf("the edit did not read back and %s could not be restored: %v", path, werr)
			}
			return fmt.Errorf("the edit did not read back as expected (%v), so %s was restored", err, path)
		}
		return nil
	}
	return errors.New("the user entry was not found in the kubeconfig files")
}

// userInstallHint reads back the user's installHint through kubectl.
func (so *Options) userInstallHint(ctx context.Context, user string) (string, error) {
	out, err := so.kubectl(ctx, "config", "view", "--raw", "-o", "json")
	if err != nil {
		return "", err
	}
	cfg, err := parseKubeconfigJSON(out)
	if err != nil {
		return "", err
	}
	for _, u := range cfg.Users {
		if u.Name == user && u.User.Exec != nil {
			return u.User.Exec.InstallHint, nil
		}
	}
	return "", fmt.Errorf("user %q not found", user)
}

// insertInstallHint adds or replaces installHint in the exec block of user
// in a kubeconfig as kubectl writes it (two-space indentation, keys in
// alphabetical order). It reports false when the block is not found.
func insertInstallHint(data []byte, user, hint string) ([]byte, bool) {
	// Compiled here, not at package level: every get-token would pay for
	// them at start-up.
	yamlNameRE := regexp.MustCompile(`^- name: (.*)$`)
	yamlKeyRE := regexp.MustCompile(`^( *)([A-Za-z]+):`)
	lines := strings.Split(string(data), "\n")
	quoted, _ := json.Marshal(hint) // a JSON string is a YAML double-quoted scalar
	inUsers := false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "- ") && line != "" {
			inUsers = line == "users:"
			continue
		}
		m := yamlNameRE.FindStringSubmatch(line)
		if !inUsers || m == nil || unquoteYAML(m[1]) != user {
			continue
		}
		// Find "  user:" then "    exec:" inside this list item.
		j := i + 1
		for ; j < len(lines) && strings.HasPrefix(lines[j], "  "); j++ {
			if lines[j] == "    exec:" {
				break
			}
		}
		if j >= len(lines) || lines[j] != "    exec:" {
			return nil, false
		}
		start := j + 1
		end := start
		for end < len(lines) && strings.HasPrefix(lines[end], "      ") {
			end++
		}
		var block []string
		placed := false
		for k := start; k < end; k++ {
			km := yamlKeyRE.FindStringSubmatch(lines[k])
			if km != nil && len(km[1]) == 6 {
				if km[2] == "installHint" {
					// Drop the old value and its continuation lines.
					for k+1 < end && strings.HasPrefix(lines[k+1], "        ") {
						k++
					}
					continue
				}
				if !placed && km[2] > "installHint" {
					block = append(block, "      installHint: "+string(quoted))
					placed = true
				}
			}
			block = append(block, lines[k])
		}
		if !placed {
			block = append(block, "      installHint: "+string(quoted))
		}
		out := append(append(append([]string{}, lines[:start]...), block...), lines[end:]...)
		return []byte(strings.Join(out, "\n")), true
	}
	return nil, false
}

func unquoteYAML(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"') {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
	}
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'")
	}
	return s
}

// kubeconfigJSON is the part of `kubectl config view -o json` Setup reads.
type kubeconfigJSON struct {
	Users []struct {
		Name string `json:"name"`
		User struct {
			Exec *struct {
				Command     string   `json:"command"`
				Args        []string `json:"args"`
				Env         []struct{ Name, Value string }
				InstallHint string `json:"installHint"`
			} `json:"exec"`
		} `json:"user"`
	} `json:"users"`
}

func parseKubeconfigJSON(b []byte) (*kubeconfigJSON, error) {
	var cfg kubeconfigJSON
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("kubectl config view printed something that is not JSON: %s", provider.JSONProblem(err))
	}
	return &cfg, nil
}

// csvField quotes s as one CSV field when it holds a comma, a quote or a
// line break, as kubectl's list flags expect.
func csvField(s string) string {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
