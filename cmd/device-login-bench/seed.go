package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin"
)

// The cache-hit scenario: a session for an issuer on a loopback port where
// nothing listens, so that any attempt to reach the network would fail the
// run instead of being timed.
const (
	hitIssuer   = "http://127.0.0.1:9"
	hitClientID = "kubectl"
)

// execInfo is KUBERNETES_EXEC_INFO as kubectl sets it for a v1 exec entry
// with interactiveMode Never.
const execInfo = `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`

// hitSession is a seeded cache directory and the command line that hits it.
type hitSession struct {
	dir   string
	key   cache.Key
	entry *cache.Entry
	args  []string // after the binary
}

// seedHit writes a fresh session into a new cache directory under parent.
// Its tokens have the shape and size of real ones (RS256 JWTs of about a
// kilobyte), so that the file read and the JSON decoding cost what they
// cost in real life.
func seedHit(parent string) (*hitSession, error) {
	dir := filepath.Join(parent, "cache")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	key := cache.Key{Issuer: hitIssuer, ClientID: hitClientID, Scopes: plugin.DefaultScopes, Token: plugin.TokenAccess}.Normalize()
	now := time.Now().UTC().Truncate(time.Second)
	exp := now.Add(time.Hour)
	e := &cache.Entry{
		Key:           key,
		TokenEndpoint: hitIssuer + "/token",
		AccessToken:   fakeJWT(map[string]any{"iss": hitIssuer, "sub": "alice", "aud": "kubernetes", "exp": exp.Unix(), "iat": now.Unix(), "scope": "openid offline_access", "client_id": hitClientID, "jti": randomText(16)}),
		Expiry:        exp,
		RefreshToken:  randomText(32),
		IDToken:       fakeJWT(map[string]any{"iss": hitIssuer, "sub": "alice", "aud": hitClientID, "exp": exp.Unix(), "iat": now.Unix(), "email": "alice@example.test", "name": "Alice Example", "auth_time": now.Unix(), "at_hash": randomText(16)}),
		IDTokenExpiry: exp,
		IssuedAt:      now,
	}
	if err := (cache.Store{Dir: dir}).Save(e); err != nil {
		return nil, err
	}
	return &hitSession{dir: dir, key: key, entry: e, args: []string{
		"get-token", "--issuer-url=" + hitIssuer, "--client-id=" + hitClientID, "--cache-dir=" + dir,
	}}, nil
}

// fakeJWT is a compact JWT with an RS256-sized random signature. Nothing
// verifies it: a cache hit only copies the token.
func fakeJWT(claims map[string]any) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": randomText(12)})
	payload, _ := json.Marshal(claims)
	sig := make([]byte, 256)
	rand.Read(sig)
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString(sig)
}

func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkHit runs one cache hit and checks that it is one: exit 0, exactly
// the seeded token on stdout in an ExecCredential, nothing on stderr.
// Timing anything else would measure an error path.
func checkHit(bin string, s *hitSession) error {
	r, err := runOnce(bin, s.args, hitEnv())
	if err != nil {
		return err
	}
	var cred struct {
		Kind   string `json:"kind"`
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	switch {
	case r.exit != 0:
		return fmt.Errorf("the cache hit exited %d: %s", r.exit, strings.TrimSpace(r.stderr))
	case r.stderr != "":
		return fmt.Errorf("the cache hit wrote to stderr: %q", r.stderr)
	case json.Unmarshal([]byte(r.stdout), &cred) != nil || cred.Kind != "ExecCredential":
		return fmt.Errorf("the cache hit printed no ExecCredential: %q", r.stdout)
	case cred.Status.Token != s.entry.AccessToken:
		return fmt.Errorf("the cache hit printed another token than the seeded one")
	}
	return nil
}

// hitEnv is the environment of every timed process: ours, with kubectl's
// KUBERNETES_EXEC_INFO and without anything that would point the plugin at
// another cache.
func hitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBERNETES_EXEC_INFO=") || strings.HasPrefix(kv, "XDG_CACHE_HOME=") || strings.HasPrefix(kv, "GODEBUG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "KUBERNETES_EXEC_INFO="+execInfo)
}
