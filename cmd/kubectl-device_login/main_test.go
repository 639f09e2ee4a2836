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

// scriptClientSecret is the secret of the scripts' confidential clients.
const scriptClientSecret = "script-secret-5d0c2b9e"

func TestScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary against a provider and the real kubectl; skipped with -short")
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			// Besides the public client: confidential clients that take
			// their secret only the way they were registered (as Ory Hydra
			// does), a client credentials client, and one that requires
			// PKCE (grants.txtar).
			p, err := providertest.NewZitadel(providertest.Options{
				AutoApprove: true, Audience: "kubernetes",
				ClientSecret: scriptClientSecret, StrictClientAuth: true, PKCEClient: true,
			})
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
			env.Setenv("CLIENT_SECRET", scriptClientSecret)
			env.Setenv("BASIC_CLIENT_ID", providertest.BasicClientID)
			env.Setenv("POST_CLIENT_ID", providertest.PostClientID)
			env.Setenv("CI_CLIENT_ID", providertest.CIClientID)
			env.Setenv("PKCE_CLIENT_ID", providertest.PKCEClientID)
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
