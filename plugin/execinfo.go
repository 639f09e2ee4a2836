package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// API versions of the client.authentication.k8s.io group the plugin speaks.
const (
	APIVersionV1      = "client.authentication.k8s.io/v1"
	APIVersionV1beta1 = "client.authentication.k8s.io/v1beta1"
)

// ExecInfo is what the host (kubectl, client-go) tells the plugin in the
// KUBERNETES_EXEC_INFO environment variable.
type ExecInfo struct {
	// APIVersion is the version the answer must carry.
	APIVersion string
	// Interactive is true when the host hands the plugin a terminal on stdin.
	Interactive bool
	// ClusterConfig is spec.cluster.config, the kubeconfig cluster extension
	// named client.authentication.k8s.io/exec, when the host provides
	// cluster information; nil otherwise.
	ClusterConfig json.RawMessage
	// Server is spec.cluster.server, when provided.
	Server string
}

// maxExecInfo bounds KUBERNETES_EXEC_INFO; client-go's is a few hundred
// bytes plus the cluster's CA data.
const maxExecInfo = 1 << 20

// ParseExecInfo reads the value of KUBERNETES_EXEC_INFO. An empty value
// means the plugin was run by hand: it answers in v1.
func ParseExecInfo(env string) (ExecInfo, error) {
	if strings.TrimSpace(env) == "" {
		return ExecInfo{APIVersion: APIVersionV1}, nil
	}
	if len(env) > maxExecInfo {
		return ExecInfo{}, fmt.Errorf("KUBERNETES_EXEC_INFO is larger than 1 MiB; it should be set only by kubectl")
	}
	var v struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			Interactive bool `json:"interactive"`
			Cluster     *struct {
				Server string          `json:"server"`
				Config json.RawMessage `json:"config"`
			} `json:"cluster"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(env), &v); err != nil {
		return ExecInfo{}, fmt.Errorf("KUBERNETES_EXEC_INFO is not a valid ExecCredential JSON object (%s); unset it, or check the program that runs this plugin", jsonProblem(err))
	}
	if v.Kind != "" && v.Kind != "ExecCredential" {
		return ExecInfo{}, fmt.Errorf("KUBERNETES_EXEC_INFO holds a %q, not an ExecCredential; unset it, or check the program that runs this plugin", Sanitize(v.Kind, 40))
	}
	switch v.APIVersion {
	case APIVersionV1, APIVersionV1beta1:
	case "":
		return ExecInfo{}, fmt.Errorf("KUBERNETES_EXEC_INFO has no apiVersion; set the kubeconfig's exec apiVersion to %s", APIVersionV1)
	default:
		return ExecInfo{}, fmt.Errorf("KUBERNETES_EXEC_INFO asks for apiVersion %q, which this plugin does not speak; set the kubeconfig's exec apiVersion to %s (or %s)", Sanitize(v.APIVersion, 80), APIVersionV1, APIVersionV1beta1)
	}
	info := ExecInfo{APIVersion: v.APIVersion, Interactive: v.Spec.Interactive}
	if c := v.Spec.Cluster; c != nil {
		info.Server = c.Server
		if len(c.Config) > 0 && string(c.Config) != "null" {
			info.ClusterConfig = c.Config
		}
	}
	return info, nil
}

// jsonProblem describes a JSON error without quoting the input.
func jsonProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("syntax error at byte %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("field %q has the wrong type", Sanitize(e.Field, 60))
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown field " + Sanitize(strings.TrimPrefix(msg, "json: unknown field "), 60)
	}
	return "it does not parse"
}

// WriteCredential writes the ExecCredential document: kind, apiVersion and
// a status with the token and, unless expiry is zero, its expiration time
// in RFC 3339 (UTC, whole seconds).
func WriteCredential(w io.Writer, apiVersion, token string, expiry time.Time) error {
	type status struct {
		ExpirationTimestamp string `json:"expirationTimestamp,omitempty"`
		Token               string `json:"token"`
	}
	doc := struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Status     status `json:"status"`
	}{Kind: "ExecCredential", APIVersion: apiVersion, Status: status{Token: token}}
	if !expiry.IsZero() {
		doc.Status.ExpirationTimestamp = expiry.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
