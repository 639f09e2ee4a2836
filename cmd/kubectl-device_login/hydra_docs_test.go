package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// EnvHydraBin names a hydra binary built with SQLite support (for example
// `go build -tags sqlite -o /tmp/hydra github.com/ory/hydra/v2` in a
// scratch module). TestHydraDocClients is skipped without it.
const EnvHydraBin = "HYDRA_BIN"

// deviceGrant is RFC 8628's grant type.
const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// TestHydraDocClients runs every client registration of docs/hydra.md (the
// ```sh blocks with `hydra create oauth2-client` or a POST to
// /admin/clients) against a real Hydra, and checks that what Hydra stored
// is what the plugin needs: device clients with the refresh grant, JWT
// access tokens and the kubernetes audience, public or confidential with
// a method the plugin speaks (HTTP Basic, or the form body); client
// credentials clients confidential, and answering with a JWT for
// kubernetes. The CLI and API registrations of one client must store the
// same fields.
func TestHydraDocClients(t *testing.T) {
	bin := os.Getenv(EnvHydraBin)
	if bin == "" {
		t.Skipf("set %s to a hydra binary built with -tags sqlite to run docs/hydra.md's client registrations", EnvHydraBin)
	}
	md, err := os.ReadFile("../../docs/hydra.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := hydraRegistrationBlocks(string(md))
	if len(blocks) < 4 {
		t.Fatalf("found %d client registrations in docs/hydra.md, want at least 4 (public CLI and API, confidential, CI)", len(blocks))
	}
	admin, public := startHydra(t, bin)

	// The blocks call `hydra`: put the binary on PATH under that name.
	dir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(dir, "hydra")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HYDRA_ADMIN_URL="+admin, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))

	stored := map[string][]map[string]any{} // client_id → each registration's stored client
	for i, block := range blocks {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("block %d failed: %v\n%s\nstdout: %s\nstderr: %s", i, err, block, stdout.String(), stderr.String())
		}
		var answer map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &answer); err != nil {
			t.Fatalf("block %d printed no JSON client: %v\n%s", i, err, stdout.String())
		}
		var clients []map[string]any
		hydraJSON(t, http.MethodGet, admin+"/admin/clients", nil, &clients)
		if len(clients) != 1 {
			t.Fatalf("block %d: %d clients stored, want 1\n%s", i, len(clients), block)
		}
		c := clients[0]
		id, _ := c["client_id"].(string)
		t.Logf("block %d registered %s: %s %v", i, id, c["token_endpoint_auth_method"], c["grant_types"])
		checkHydraClient(t, c)
		if slices.Equal(strs(c["grant_types"]), []string{"client_credentials"}) {
			secret, _ := answer["client_secret"].(string)
			checkClientCredentials(t, public, id, secret)
		}
		stored[id] = append(stored[id], c)
		hydraJSON(t, http.MethodDelete, admin+"/admin/clients/"+url.PathEscape(id), nil, nil)
	}

	for id, cs := range stored {
		for _, c := range cs[1:] {
			for _, f := range []string{"client_name", "token_endpoint_auth_method", "grant_types", "response_types", "scope", "audience", "access_token_strategy"} {
				if !reflect.DeepEqual(cs[0][f], c[f]) {
					t.Errorf("%s: the registrations store different %s: %v and %v", id, f, cs[0][f], c[f])
				}
			}
		}
	}
	if len(stored["kubectl"]) < 2 {
		t.Errorf("want the public client kubectl registered both with the CLI and the API, got %d registrations", len(stored["kubectl"]))
	}
}

// hydraRegistrationBlocks returns the ```sh blocks of md that register a
// client, and nothing else.
func hydraRegistrationBlocks(md string) []string {
	var out []string
	var b strings.Builder
	in := false
	for _, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			if in {
				block := b.String()
				if strings.Contains(block, "hydra create oauth2-client") || strings.Contains(block, `"$HYDRA_ADMIN_URL/admin/clients"`) {
					out = append(out, block)
				}
				b.Reset()
			}
			in = !in && strings.TrimPrefix(trimmed, "```") == "sh"
		case in:
			b.WriteString(line + "\n")
		}
	}
	return out
}

// checkHydraClient checks one stored client against what the plugin needs.
func checkHydraClient(t *testing.T, c map[string]any) {
	t.Helper()
	id := c["client_id"]
	auth, _ := c["token_endpoint_auth_method"].(string)
	if c["access_token_strategy"] != "jwt" {
		t.Errorf("%s: access_token_strategy %v, want jwt (kube-apiserver verifies only JWTs)", id, c["access_token_strategy"])
	}
	if !slices.Contains(strs(c["audience"]), "kubernetes") {
		t.Errorf("%s: audience %v does not allow kubernetes", id, c["audience"])
	}
	if len(strs(c["response_types"])) != 0 {
		t.Errorf("%s: response_types %v, want none", id, c["response_types"])
	}
	switch grants := strs(c["grant_types"]); {
	case slices.Equal(grants, []string{deviceGrant, "refresh_token"}):
		if !slices.Contains([]string{"none", "client_secret_basic", "client_secret_post"}, auth) {
			t.Errorf("%s: token_endpoint_auth_method %q; the plugin sends no secret (none), or one with HTTP Basic (client_secret_basic, its default) or in the form body (client_secret_post, --client-auth=post)", id, auth)
		}
		scope := strings.Fields(fmt.Sprint(c["scope"]))
		if !slices.Contains(scope, "openid") || !slices.Contains(scope, "offline_access") {
			t.Errorf("%s: scope %q lacks openid or offline_access", id, c["scope"])
		}
	case slices.Equal(grants, []string{"client_credentials"}):
		if auth == "none" {
			t.Errorf("%s: a client credentials client must be confidential", id)
		}
	default:
		t.Errorf("%s: grant_types %v, want device_code+refresh_token or client_credentials", id, grants)
	}
}

// checkClientCredentials asks Hydra for a token with HTTP Basic
// authentication and the kubernetes audience, and checks the JWT.
func checkClientCredentials(t *testing.T, public, id, secret string) {
	t.Helper()
	if secret == "" {
		t.Errorf("%s: the registration printed no client_secret", id)
		return
	}
	form := url.Values{"grant_type": {"client_credentials"}, "audience": {"kubernetes"}}
	req, _ := http.NewRequest(http.MethodPost, public+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	hydraDo(t, req, &tok)
	parts := strings.Split(tok.AccessToken, ".")
	if len(parts) != 3 {
		t.Fatalf("%s: the access token is not a JWT", id)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Aud []string `json:"aud"`
		Sub string   `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(claims.Aud, []string{"kubernetes"}) || claims.Sub != id || tok.RefreshToken != "" {
		t.Errorf("%s: client credentials token has aud %v, sub %q, refresh token %t; want [kubernetes], the client ID, none", id, claims.Aud, claims.Sub, tok.RefreshToken != "")
	}
}

// startHydra runs `hydra serve all --dev` with an in-memory database and
// returns its admin and public URLs.
func startHydra(t *testing.T, bin string) (admin, public string) {
	t.Helper()
	dir := t.TempDir()
	pub, adm := freePort(t), freePort(t)
	public = fmt.Sprintf("http://127.0.0.1:%d", pub)
	admin = fmt.Sprintf("http://127.0.0.1:%d", adm)
	cfg := fmt.Sprintf(`dsn: memory
serve:
  public: {host: 127.0.0.1, port: %d}
  admin: {host: 127.0.0.1, port: %d}
urls:
  self: {issuer: %s/}
secrets:
  system: [docs-test-secret-not-for-use]
log: {level: error}
`, pub, adm, public)
	path := filepath.Join(dir, "hydra.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "all", "--dev", "--sqa-opt-out", "-c", path)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(admin + "/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return admin, public
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hydra did not become ready in 60 s:\n%s", log.String())
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hydraJSON sends body (when not nil) as JSON and decodes the answer into
// out (when not nil).
func hydraJSON(t *testing.T, method, u string, body, out any) {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		r = bytes.NewReader(data)
	} else {
		r = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	hydraDo(t, req, out)
}

func hydraDo(t *testing.T, req *http.Request, out any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s\n%s", req.Method, req.URL, resp.Status, buf.String())
	}
	if out != nil {
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v\n%s", req.Method, req.URL, err, buf.String())
		}
	}
}

// strs converts a decoded JSON array of strings.
func strs(v any) []string {
	var out []string
	if a, ok := v.([]any); ok {
		for _, s := range a {
			out = append(out, fmt.Sprint(s))
		}
	}
	return out
}
