package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache/minijson"
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
	var v execRequest
	if v.read(env) != nil {
		// encoding/json refuses it too, and says why in its own terms.
		v = execRequest{}
		if err := json.Unmarshal([]byte(env), &v); err != nil {
			return ExecInfo{}, fmt.Errorf("KUBERNETES_EXEC_INFO is not a valid ExecCredential JSON object (%s); unset it, or check the program that runs this plugin", provider.JSONProblem(err))
		}
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

// execRequest is the part of the host's ExecCredential that the plugin
// reads.
type execRequest struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Spec       struct {
		Interactive bool         `json:"interactive"`
		Cluster     *execCluster `json:"cluster"`
	} `json:"spec"`
}

type execCluster struct {
	Config json.RawMessage `json:"config"`
}

// read decodes data into v exactly as json.Unmarshal does, without its
// reflection, whose first use costs more than the rest of a cache hit's
// own work; FuzzExecRequestMatchesEncodingJSON holds it to that. It
// fails where json.Unmarshal fails, but with none of its descriptions.
func (v *execRequest) read(data string) error {
	r := minijson.NewReader(data)
	spec := func(name []byte) error {
		switch string(name) {
		case "interactive":
			return r.Bool(&v.Spec.Interactive)
		case "cluster":
			if r.Null() {
				v.Spec.Cluster = nil
				return nil
			}
			if v.Spec.Cluster == nil {
				v.Spec.Cluster = &execCluster{}
			}
			c := v.Spec.Cluster
			return r.Object(func(name []byte) error {
				if string(name) != "config" {
					return nil
				}
				raw, err := r.Raw()
				if err != nil {
					return err
				}
				return c.Config.UnmarshalJSON([]byte(raw))
			})
		}
		return nil
	}
	err := r.Object(func(name []byte) error {
		switch string(name) {
		case "kind":
			return r.String(&v.Kind)
		case "apiversion":
			return r.String(&v.APIVersion)
		case "spec":
			return r.Object(spec)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return r.End()
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
	// Byte for byte what json.Marshal wrote for it (HTML escaping
	// included), without building its encoder by reflection first;
	// TestCredentialWriteMatchesEncodingJSON holds it to that.
	b := make([]byte, 0, 128+len(c.Token))
	b = append(b, `{"kind":"ExecCredential","apiVersion":`...)
	b = minijson.AppendString(b, c.APIVersion, true)
	b = append(b, `,"status":{`...)
	if !c.Expiry.IsZero() {
		b = append(b, `"expirationTimestamp":`...)
		b = minijson.AppendString(b, c.Expiry.UTC().Truncate(time.Second).Format(time.RFC3339), true)
		b = append(b, ',')
	}
	b = append(b, `"token":`...)
	b = minijson.AppendString(b, c.Token, true)
	b = append(b, "}}\n"...)
	_, err := w.Write(b)
	return err
}
