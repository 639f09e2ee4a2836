package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Do sends a request to the API server as the admin (client certificate in
// system:masters). A non-nil body is sent as JSON. It returns the status
// code and the response body.
func (c *Cluster) Do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.admin.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, data, err
}

// create POSTs an object as the admin and expects 201 Created.
func (c *Cluster) create(ctx context.Context, path string, obj any, out any) error {
	code, data, err := c.Do(ctx, http.MethodPost, path, obj)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	if code != http.StatusCreated && code != http.StatusOK {
		return fmt.Errorf("POST %s: %d: %s", path, code, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Rule is an RBAC policy rule. APIGroups nil means the core group ("").
type Rule struct {
	APIGroups       []string `json:"apiGroups,omitempty"`
	Resources       []string `json:"resources,omitempty"`
	ResourceNames   []string `json:"resourceNames,omitempty"`
	NonResourceURLs []string `json:"nonResourceURLs,omitempty"`
	Verbs           []string `json:"verbs"`
}

var roleSeq atomic.Int64

// BindClusterRole creates a ClusterRole with these rules and a
// ClusterRoleBinding of it to the user, waits until the authorizer has seen
// it (a SubjectAccessReview of the first rule allows), and returns the
// role's name. (The built-in view/edit roles are empty here: aggregation
// needs kube-controller-manager.)
func (c *Cluster) BindClusterRole(t testing.TB, user string, rules ...Rule) string {
	t.Helper()
	return c.bind(t, "User", user, rules)
}

// BindClusterRoleToGroup is BindClusterRole for a group.
func (c *Cluster) BindClusterRoleToGroup(t testing.TB, group string, rules ...Rule) string {
	t.Helper()
	return c.bind(t, "Group", group, rules)
}

func (c *Cluster) bind(t testing.TB, kind, subject string, rules []Rule) string {
	t.Helper()
	if len(rules) == 0 {
		t.Fatal("kubetest: BindClusterRole needs at least one rule")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rules = append([]Rule(nil), rules...)
	for i := range rules {
		if rules[i].APIGroups == nil && len(rules[i].NonResourceURLs) == 0 {
			rules[i].APIGroups = []string{""}
		}
	}
	name := fmt.Sprintf("kubetest:%s:%d", strings.NewReplacer("/", "-", "%", "-").Replace(subject), roleSeq.Add(1))
	role := map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "ClusterRole",
		"metadata":   map[string]any{"name": name},
		"rules":      rules,
	}
	if err := c.create(ctx, "/apis/rbac.authorization.k8s.io/v1/clusterroles", role, nil); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	binding := map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "ClusterRoleBinding",
		"metadata":   map[string]any{"name": name},
		"roleRef":    map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
		"subjects":   []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}},
	}
	if err := c.create(ctx, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding, nil); err != nil {
		t.Fatalf("kubetest: %v", err)
	}

	// RBAC reads bindings through an informer: wait until it has them.
	spec := map[string]any{}
	if kind == "User" {
		spec["user"] = subject
	} else {
		spec["groups"] = []string{subject}
	}
	r := rules[0]
	verb := r.Verbs[0]
	if verb == "*" {
		verb = "get"
	}
	if len(r.NonResourceURLs) > 0 {
		spec["nonResourceAttributes"] = map[string]any{"path": strings.TrimSuffix(r.NonResourceURLs[0], "*"), "verb": verb}
	} else {
		attrs := map[string]any{"verb": verb, "group": r.APIGroups[0]}
		if len(r.Resources) > 0 {
			res, sub, _ := strings.Cut(r.Resources[0], "/")
			attrs["resource"] = res
			attrs["subresource"] = sub
		}
		if len(r.ResourceNames) > 0 {
			attrs["name"] = r.ResourceNames[0]
		}
		spec["resourceAttributes"] = attrs
	}
	sar := map[string]any{
		"apiVersion": "authorization.k8s.io/v1",
		"kind":       "SubjectAccessReview",
		"spec":       spec,
	}
	for {
		var out struct {
			Status struct {
				Allowed bool   `json:"allowed"`
				Reason  string `json:"reason"`
			} `json:"status"`
		}
		err := c.create(ctx, "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar, &out)
		if err == nil && out.Status.Allowed {
			return name
		}
		if ctx.Err() != nil {
			t.Fatalf("kubetest: binding %s to %s %q not in effect after 30s (last: %v %s)", name, kind, subject, err, out.Status.Reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// UserInfo is the user a token authenticates as (authentication.k8s.io/v1).
type UserInfo struct {
	Username string              `json:"username"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// TokenReview asks the API server who a bearer token authenticates as. An
// unauthenticated token gives an error with the server's reason.
// Audiences, when given, are the TokenReview's spec.audiences.
func (c *Cluster) TokenReview(ctx context.Context, token string, audiences ...string) (UserInfo, error) {
	spec := map[string]any{"token": token}
	if len(audiences) > 0 {
		spec["audiences"] = audiences
	}
	var out struct {
		Status struct {
			Authenticated bool     `json:"authenticated"`
			User          UserInfo `json:"user"`
			Error         string   `json:"error"`
		} `json:"status"`
	}
	err := c.create(ctx, "/apis/authentication.k8s.io/v1/tokenreviews", map[string]any{
		"apiVersion": "authentication.k8s.io/v1",
		"kind":       "TokenReview",
		"spec":       spec,
	}, &out)
	if err != nil {
		return UserInfo{}, err
	}
	if !out.Status.Authenticated {
		msg := out.Status.Error
		if msg == "" {
			msg = "no authenticator accepted the token"
		}
		return UserInfo{}, fmt.Errorf("token not authenticated: %s", msg)
	}
	return out.Status.User, nil
}

// WaitForToken retries a TokenReview until the token is accepted, for up to
// 30 s, and returns the user. kube-apiserver fetches each issuer's discovery
// document in the background after start (and again every 10 s after a
// failure); /readyz does not wait for it, so a freshly started cluster
// refuses valid tokens for a moment. A token that can never be accepted
// makes this wait the whole 30 s before failing the test.
func (c *Cluster) WaitForToken(t testing.TB, token string) UserInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		u, err := c.TokenReview(ctx, token)
		if err == nil {
			return u
		}
		if ctx.Err() != nil {
			t.Fatalf("kubetest: token still refused after 30s: %v\nlast lines of kube-apiserver's log:\n%s", err, tail(c.APIServerLog, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
