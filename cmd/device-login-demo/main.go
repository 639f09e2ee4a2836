// Command device-login-demo shows kubectl-device-login at work with
// nothing from outside: it starts a local OpenID provider (zitadel's op, the
// same one the tests use) and a small HTTPS API endpoint on loopback, writes
// a kubeconfig whose user runs the plugin, and runs the real kubectl with it
// twice: once to sign in with a device login, once from the cache.
//
// It is a development tool (`make demo`); the plugin binary never links it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

func main() {
	pluginPath := flag.String("plugin", "bin/kubectl-device_login", "plugin binary to run")
	kubectlPath := flag.String("kubectl", "kubectl", "kubectl binary")
	autoApprove := flag.Bool("auto-approve", os.Getenv("AUTO_APPROVE") == "1", "approve the login without a person (for unattended runs)")
	flag.Parse()
	// The in-process provider logs every route through the global logger;
	// the demo's output is what kubectl and the plugin say.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *pluginPath, *kubectlPath, *autoApprove); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, pluginPath, kubectlPath string, autoApprove bool) error {
	plugin, err := filepath.Abs(pluginPath)
	if err != nil {
		return err
	}
	if _, err := os.Stat(plugin); err != nil {
		return fmt.Errorf("no plugin binary at %s; run make build first", plugin)
	}
	provider, err := providertest.NewZitadel(providertest.Options{AutoApprove: autoApprove, Interval: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("starting the local provider: %w", err)
	}
	defer provider.Close()
	api := providertest.NewAPIServer(provider.Issuer(), provider.HTTPClient())
	defer api.Close()

	dir, err := os.MkdirTemp("", "device-login-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	args := []string{"get-token", "--issuer-url=" + provider.Issuer(), "--client-id=" + provider.ClientID(),
		"--scope=openid", "--scope=offline_access", "--scope=email", "--cache-dir=" + filepath.Join(dir, "cache")}
	if autoApprove {
		// Unattended: stderr is no terminal, so allow the login anyway.
		args = append(args, "--device-login=always")
	}
	if err := providertest.WriteKubeconfig(kubeconfig, providertest.Kubeconfig{
		Server: api.URL(), CAPEM: api.CAPEM(), Command: plugin, Args: args,
	}); err != nil {
		return err
	}

	fmt.Printf(`kubectl-device-login demo
  identity provider  %s  (local; its approval page is %s)
  API endpoint       %s  (local; accepts the provider's tokens)
  kubeconfig         %s  (its user runs %s)

`, provider.Issuer(), provider.VerificationURI(), api.URL(), kubeconfig, pluginPath)
	if autoApprove {
		fmt.Println("AUTO_APPROVE=1: the provider approves the login by itself.")
	} else {
		fmt.Println("Open the page below in any browser on this machine, check the code, and press Approve.")
	}

	for i, note := range []string{
		"first run: no session yet, so the plugin starts a device login",
		"second run: the token comes from the cache, no provider involved",
	} {
		fmt.Printf("\n$ kubectl auth whoami        # %s\n", note)
		start := time.Now()
		cmd := exec.CommandContext(ctx, kubectlPath, "--kubeconfig="+kubeconfig, "auth", "whoami")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = withoutEnv(os.Environ(), "KUBECONFIG", "KUBERNETES_EXEC_INFO")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("kubectl run %d failed: %v", i+1, err)
		}
		fmt.Printf("(took %s)\n", time.Since(start).Round(time.Millisecond))
	}
	fmt.Println("\nDone: one device login, then a cached token. The demo's session lived in a temporary directory and is gone.")
	return nil
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
outer:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return out
}
