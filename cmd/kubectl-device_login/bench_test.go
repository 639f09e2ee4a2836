package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin"
)

// BenchmarkGetTokenCommand is a whole cache hit inside one process, flag
// parsing included: what the binary does after the Go runtime has started
// and before it exits. `make bench` reports its allocations.
func BenchmarkGetTokenCommand(b *testing.B) {
	const issuer, clientID = "http://127.0.0.1:9", "kubectl"
	dir := b.TempDir()
	tok := func(n int) string {
		buf := make([]byte, n)
		rand.Read(buf)
		return base64.RawURLEncoding.EncodeToString(buf)
	}
	now := time.Now()
	e := &cache.Entry{
		Key:           cache.Key{Issuer: issuer, ClientID: clientID, Scopes: plugin.DefaultScopes, Token: plugin.TokenAccess}.Normalize(),
		TokenEndpoint: issuer + "/token",
		AccessToken:   tok(27) + "." + tok(300) + "." + tok(256), Expiry: now.Add(time.Hour),
		RefreshToken: tok(32), IssuedAt: now,
	}
	if err := (cache.Store{Dir: dir}).Save(e); err != nil {
		b.Fatal(err)
	}
	b.Setenv("KUBERNETES_EXEC_INFO", `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`)
	args := []string{"get-token", "--issuer-url=" + issuer, "--client-id=" + clientID, "--cache-dir=" + dir}
	var stdout, stderr bytes.Buffer
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		stdout.Reset()
		if code := run(ctx, args, &stdout, &stderr); code != 0 {
			b.Fatalf("exit %d: %s", code, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), `"token":"`+e.AccessToken+`"`) || stderr.Len() > 0 {
		b.Fatalf("not a quiet cache hit: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}
