package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/devicelogin/kubectl-device-login/plugin/provider"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
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
}

// maxExecInfo bounds KUBERNETES_EXEC_INFO; client-go's is a few hundred
// bytes plus the cluster's CA data.
const maxExecInfo = 1 << 20

// parseExecInfo reads the value of KUBERNETES_EXEC_INFO. An empty value
// means the plugin was run by hand: it answers in v1.
func parseExecInfo(env string) (ExecInfo, error) {
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
				Config json.RawMessage `json:"config"`
			} `json:"cluster"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(env), &v); err != nil {
		return ExecInfo{}, fmt.Errorf("KUBERNETES_EXEC_INFO is not a valid ExecCredential JSON object (%s); unset it, or check the program that runs this plugin", provider.JSONProblem(err))
	}
	if v.Kind != "" && v.Kind != "ExecCredential" {
		return ExecInfo{}, fmt.Errorf("KUBERNETES_EXEC_INFO holds a %q, not an ExecCredential; unset it, or check the program that runs this plugin", terminal.Sanitize(v.Kind, 40))
	}
	switch v.APIVersion {
	case APIVersionV1, APIVersionV1beta1:
	case "":
		return ExecInfo{}, fmt.Errorf("KUBERNETES_EXEC_INFO has no apiVersion; set the kubeconfig's exec apiVersion to %s", APIVersionV1)
	default:
		return ExecInfo{}, fmt.Errorf("KUBERNETES_EXEC_INFO asks for apiVersion %q, which this plugin does not speak; set the kubeconfig's exec apiVersion to %s (or %s)", terminal.Sanitize(v.APIVersion, 80), APIVersionV1, APIVersionV1beta1)
	}
	info := ExecInfo{APIVersion: v.APIVersion, Interactive: v.Spec.Interactive}
	if c := v.Spec.Cluster; c != nil && len(c.Config) > 0 && string(c.Config) != "null" {
		info.ClusterConfig = c.Config
	}
	return info, nil
}

// Credential is what get-token hands to kubectl.
type Credential struct {
	// APIVersion is the version the host asked for.
	APIVersion string
	// Token is the bearer token.
	Token string
	// Expiry is the expirationTimestamp: when kubectl should run the
	// plugin again. Zero for none.
	Expiry time.Time
	// Bare prints the token alone (--output=token), for scripts.
	Bare bool
}

// Write prints the credential: the ExecCredential document (kind,
// apiVersion and a status with the token and, unless Expiry is zero, its
// RFC 3339 expiration time in UTC, whole seconds), or the bare token.
func (c Credential) Write(w io.Writer) error {
	if c.Bare {
		_, err := io.WriteString(w, c.Token+"\n")
		return err
	}
	type status struct {
		ExpirationTimestamp string `json:"expirationTimestamp,omitempty"`
		Token               string `json:"token"`
	}
	doc := struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Status     status `json:"status"`
	}{Kind: "ExecCredential", APIVersion: c.APIVersion, Status: status{Token: c.Token}}
	if !c.Expiry.IsZero() {
		doc.Status.ExpirationTimestamp = c.Expiry.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
