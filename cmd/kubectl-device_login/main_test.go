package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// The scripts in testdata/script run the real binary (this test binary,
// installed on PATH as kubectl-device_login, so `kubectl device-login`
// works through the real kubectl) the way the docs show it, against a real
// provider (zitadel's op, approving every login at once) and a TLS API
// endpoint. Read them as documentation.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"kubectl-device_login": func() { os.Exit(run(context.Background(), commandLine(os.Args), os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			p, err := providertest.NewZitadel(providertest.Options{AutoApprove: true, Audience: "kubernetes"})
			if err != nil {
				return err
			}
			env.Defer(func() { p.Close() })
			api := providertest.NewAPIServer(p.Issuer(), nil)
			env.Defer(api.Close)
			ca := filepath.Join(env.WorkDir, "api-ca.pem")
			if err := os.WriteFile(ca, api.CAPEM(), 0o600); err != nil {
				return err
			}
			env.Setenv("ISSUER", p.Issuer())
			env.Setenv("CLIENT_ID", p.ClientID())
			env.Setenv("USERINFO", p.Issuer()+"/userinfo")
			env.Setenv("API_URL", api.URL())
			env.Setenv("API_CA", ca)
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, ".cache"))
			env.Setenv("KUBECONFIG", filepath.Join(env.WorkDir, ".kube", "config"))
			env.Setenv("KUBECACHEDIR", filepath.Join(env.WorkDir, ".kube", "cache"))
			return nil
		},
	})
}
