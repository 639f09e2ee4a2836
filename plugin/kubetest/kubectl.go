package kubetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Kubectl returns the path of a kubectl binary. Version "" is $KUBECTL, else
// kubectl on PATH; a version such as "1.30" is kubectl.1.30 in the directory
// that kubectl resolves to (google-cloud-cli installs kubectl.1.27 … 1.33
// there). It fails the test when the binary is missing.
func Kubectl(t testing.TB, version string) string {
	t.Helper()
	base := os.Getenv("KUBECTL")
	if base == "" {
		p, err := exec.LookPath("kubectl")
		if err != nil {
			t.Fatalf("kubetest: kubectl not found on PATH (or set KUBECTL): %v", err)
		}
		base = p
	}
	if version == "" {
		return base
	}
	real, err := filepath.EvalSymlinks(base)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	for _, dir := range []string{filepath.Dir(real), filepath.Dir(base)} {
		p := filepath.Join(dir, "kubectl."+version)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatalf("kubetest: kubectl.%s not found beside %s", version, real)
	return ""
}

// KubectlCmd prepares `kubectl --kubeconfig=KUBECONFIG ARGS...`, bound to
// ctx, with the test's environment minus KUBECONFIG, plus a discovery cache
// beside the kubeconfig (KUBECACHEDIR) and kuberc disabled (KUBERC=off), so
// that nothing from the user's ~/.kube leaks in. Callers may change Env,
// Stdin, Stdout and Stderr before running it.
func KubectlCmd(ctx context.Context, kubectl, kubeconfig string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	env := []string{}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name == "KUBECONFIG" || name == "KUBECACHEDIR" || name == "KUBERC" {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env,
		"KUBECACHEDIR="+filepath.Join(filepath.Dir(kubeconfig), "kubectl-cache"),
		"KUBERC=off",
	)
	return cmd
}
