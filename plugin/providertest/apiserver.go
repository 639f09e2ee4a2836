package providertest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"
)

// APIServer is a small HTTPS stand-in for a Kubernetes API server: enough
// for kubectl and client-go to send a bearer token from an exec plugin and
// get an answer (`kubectl get --raw /api`, `kubectl auth whoami`). It checks
// every token with the provider's userinfo endpoint. Where a real
// kube-apiserver is needed, see package kubetest.
type APIServer struct {
	srv      *httptest.Server
	issuer   string
	client   *http.Client
	mu       sync.Mutex
	tokens   map[string]string // token -> user, for tokens userinfo accepted
	requests int
	rejected int
	last     string
}

// NewAPIServer starts an API server that accepts the access tokens (or ID
// tokens, see below) of the provider with this issuer. client is used to
// reach the provider (nil for http.DefaultClient).
func NewAPIServer(issuer string, client *http.Client) *APIServer {
	if client == nil {
		client = http.DefaultClient
	}
	a := &APIServer{issuer: strings.TrimRight(issuer, "/"), client: client, tokens: map[string]string{}}
	a.srv = httptest.NewTLSServer(http.HandlerFunc(a.serve))
	return a
}

// URL is the server's https address.
func (a *APIServer) URL() string { return a.srv.URL }

// CAPEM is the PEM of the certificate that signs the server's certificate,
// for a kubeconfig's certificate-authority-data.
func (a *APIServer) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.srv.Certificate().Raw})
}

// Close stops the server.
func (a *APIServer) Close() { a.srv.Close() }

// Stats reports the requests seen, those refused, and the last token that
// was accepted.
func (a *APIServer) Stats() (requests, rejected int, lastToken string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests, a.rejected, a.last
}

func (a *APIServer) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests++
	a.mu.Unlock()
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	user := ""
	if ok {
		user, ok = a.authenticate(r.Context(), token)
	}
	if !ok {
		a.mu.Lock()
		a.rejected++
		a.mu.Unlock()
		status(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	a.mu.Lock()
	a.last = token
	a.mu.Unlock()
	switch {
	case r.URL.Path == "/api":
		writeJSON(w, map[string]any{"kind": "APIVersions", "versions": []string{"v1"},
			"serverAddressByClientCIDRs": []map[string]string{{"clientCIDR": "0.0.0.0/0", "serverAddress": r.Host}}})
	case r.URL.Path == "/version":
		writeJSON(w, map[string]any{"major": "1", "minor": "37", "gitVersion": "v1.37.2-devicelogin-test"})
	case r.URL.Path == "/apis":
		writeJSON(w, map[string]any{"kind": "APIGroupList", "apiVersion": "v1", "groups": []any{}})
	case strings.HasPrefix(r.URL.Path, "/apis/authentication.k8s.io/") && strings.HasSuffix(r.URL.Path, "/selfsubjectreviews") && r.Method == http.MethodPost:
		version := strings.Split(r.URL.Path, "/")[3]
		writeJSON(w, map[string]any{
			"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/" + version,
			"metadata": map[string]any{"creationTimestamp": time.Now().UTC().Format(time.RFC3339)},
			"status":   map[string]any{"userInfo": map[string]any{"username": user, "groups": []string{"system:authenticated"}}},
		})
	default:
		status(w, http.StatusNotFound, "the server could not find the requested resource")
	}
}

// authenticate accepts a token the provider's userinfo endpoint accepts
// (an access token), or a JWT whose iss is the provider and that userinfo
// does not know (an ID token: its claims are trusted unverified, which is
// fine for a test double and never done by the plugin itself).
func (a *APIServer) authenticate(ctx context.Context, token string) (string, bool) {
	a.mu.Lock()
	user, ok := a.tokens[token]
	a.mu.Unlock()
	if ok {
		return user, true
	}
	user, ok = a.userinfo(ctx, token)
	if !ok {
		user, ok = idTokenUser(token, a.issuer)
	}
	if ok {
		a.mu.Lock()
		a.tokens[token] = user
		a.mu.Unlock()
	}
	return user, ok
}

func (a *APIServer) userinfo(ctx context.Context, token string) (string, bool) {
	var d struct {
		Userinfo string `json:"userinfo_endpoint"`
	}
	if err := a.getJSON(ctx, a.issuer+"/.well-known/openid-configuration", "", &d); err != nil || d.Userinfo == "" {
		return "", false
	}
	var u struct {
		Sub   string `json:"sub"`
		Email string `json:"email"`
	}
	if err := a.getJSON(ctx, d.Userinfo, token, &u); err != nil || u.Sub == "" {
		return "", false
	}
	if u.Email != "" {
		return u.Email, true
	}
	return u.Sub, true
}

func (a *APIServer) getJSON(ctx context.Context, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func idTokenUser(token, issuer string) (string, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return "", false
	}
	var c struct {
		Iss   string `json:"iss"`
		Sub   string `json:"sub"`
		Email string `json:"email"`
		Exp   int64  `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || strings.TrimRight(c.Iss, "/") != issuer || c.Sub == "" || time.Unix(c.Exp, 0).Before(time.Now()) {
		return "", false
	}
	if c.Email != "" {
		return c.Email, true
	}
	return c.Sub, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func status(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": msg, "code": code})
}

// Kubeconfig is what WriteKubeconfig needs to know.
type Kubeconfig struct {
	// Server and CAPEM describe the cluster.
	Server string
	CAPEM  []byte
	// Command and Args run the exec plugin.
	Command string
	Args    []string
	// APIVersion of the exec credential (default client.authentication.k8s.io/v1).
	APIVersion string
	// InteractiveMode (default Never).
	InteractiveMode string
	// ProvideClusterInfo and ClusterConfig set provideClusterInfo and the
	// cluster's client.authentication.k8s.io/exec extension.
	ProvideClusterInfo bool
	ClusterConfig      map[string]any
}

// WriteKubeconfig writes a kubeconfig with one cluster, one user whose
// credentials come from the exec plugin, and a current context.
func WriteKubeconfig(path string, k Kubeconfig) error {
	if k.APIVersion == "" {
		k.APIVersion = "client.authentication.k8s.io/v1"
	}
	if k.InteractiveMode == "" {
		k.InteractiveMode = "Never"
	}
	cluster := map[string]any{"server": k.Server, "certificate-authority-data": k.CAPEM}
	if k.ClusterConfig != nil {
		cluster["extensions"] = []any{map[string]any{"name": "client.authentication.k8s.io/exec", "extension": k.ClusterConfig}}
	}
	exec := map[string]any{"apiVersion": k.APIVersion, "command": k.Command, "args": k.Args, "interactiveMode": k.InteractiveMode}
	if k.ProvideClusterInfo {
		exec["provideClusterInfo"] = true
	}
	cfg := map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"clusters":        []any{map[string]any{"name": "test", "cluster": cluster}},
		"users":           []any{map[string]any{"name": "device-login", "user": map[string]any{"exec": exec}}},
		"contexts":        []any{map[string]any{"name": "test", "context": map[string]any{"cluster": "test", "user": "device-login"}}},
		"current-context": "test",
	}
	// JSON is YAML; []byte fields become base64, as kubeconfig wants.
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
