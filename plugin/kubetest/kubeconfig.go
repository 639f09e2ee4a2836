package kubetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// User is how a kubeconfig's user authenticates: a static bearer token, a
// client certificate, or an exec credential plugin.
type User struct {
	Token                       string
	TokenFile                   string
	ClientCertPEM, ClientKeyPEM []byte
	Exec                        *Exec
}

// Exec is a kubeconfig user's exec credential plugin.
type Exec struct {
	Command string
	Args    []string
	Env     []EnvVar
	// APIVersion is client.authentication.k8s.io/v1 (default) or v1beta1.
	APIVersion string
	// InteractiveMode is Never, IfAvailable or Always. Default IfAvailable
	// (kubectl's own default for v1beta1; v1 requires the field).
	InteractiveMode string
	// ProvideClusterInfo makes kubectl pass spec.cluster in
	// KUBERNETES_EXEC_INFO.
	ProvideClusterInfo bool
	// InstallHint is shown by kubectl when Command is not found.
	InstallHint string
	// ClusterConfig, when not nil, is stored as the cluster's extension
	// named client.authentication.k8s.io/exec, which kubectl passes to the
	// plugin as spec.cluster.config when ProvideClusterInfo is set.
	ClusterConfig any
}

// EnvVar is one environment variable of an exec plugin.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// The wire form of a kubeconfig (k8s.io/client-go/tools/clientcmd/api/v1),
// only the parts used here. JSON is valid YAML, which kubectl reads.
type kubeconfig struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Clusters       []namedCluster `json:"clusters"`
	Users          []namedUser    `json:"users"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
}

type namedCluster struct {
	Name    string      `json:"name"`
	Cluster clusterInfo `json:"cluster"`
}

type clusterInfo struct {
	Server                   string           `json:"server"`
	CertificateAuthorityData []byte           `json:"certificate-authority-data,omitempty"`
	Extensions               []namedExtension `json:"extensions,omitempty"`
}

type namedExtension struct {
	Name      string `json:"name"`
	Extension any    `json:"extension"`
}

type namedUser struct {
	Name string   `json:"name"`
	User authInfo `json:"user"`
}

type authInfo struct {
	ClientCertificateData []byte      `json:"client-certificate-data,omitempty"`
	ClientKeyData         []byte      `json:"client-key-data,omitempty"`
	Token                 string      `json:"token,omitempty"`
	TokenFile             string      `json:"tokenFile,omitempty"`
	Exec                  *execConfig `json:"exec,omitempty"`
}

type execConfig struct {
	APIVersion         string   `json:"apiVersion"`
	Command            string   `json:"command"`
	Args               []string `json:"args,omitempty"`
	Env                []EnvVar `json:"env,omitempty"`
	InstallHint        string   `json:"installHint,omitempty"`
	ProvideClusterInfo bool     `json:"provideClusterInfo,omitempty"`
	InteractiveMode    string   `json:"interactiveMode,omitempty"`
}

type namedContext struct {
	Name    string         `json:"name"`
	Context contextDetails `json:"context"`
}

type contextDetails struct {
	Cluster string `json:"cluster"`
	User    string `json:"user"`
}

// KubeconfigData renders a kubeconfig for this cluster (context, cluster and
// user all named "kubetest") whose user authenticates as u says.
func (c *Cluster) KubeconfigData(u User) ([]byte, error) {
	cl := clusterInfo{Server: c.Server, CertificateAuthorityData: c.CAPEM}
	ai := authInfo{
		ClientCertificateData: u.ClientCertPEM,
		ClientKeyData:         u.ClientKeyPEM,
		Token:                 u.Token,
		TokenFile:             u.TokenFile,
	}
	if e := u.Exec; e != nil {
		ai.Exec = &execConfig{
			APIVersion:         e.APIVersion,
			Command:            e.Command,
			Args:               e.Args,
			Env:                e.Env,
			InstallHint:        e.InstallHint,
			ProvideClusterInfo: e.ProvideClusterInfo,
			InteractiveMode:    e.InteractiveMode,
		}
		if ai.Exec.APIVersion == "" {
			ai.Exec.APIVersion = "client.authentication.k8s.io/v1"
		}
		if ai.Exec.InteractiveMode == "" {
			ai.Exec.InteractiveMode = "IfAvailable"
		}
		if e.ClusterConfig != nil {
			cl.Extensions = []namedExtension{{Name: "client.authentication.k8s.io/exec", Extension: e.ClusterConfig}}
		}
	}
	return json.MarshalIndent(kubeconfig{
		APIVersion:     "v1",
		Kind:           "Config",
		Clusters:       []namedCluster{{Name: "kubetest", Cluster: cl}},
		Users:          []namedUser{{Name: "kubetest", User: ai}},
		Contexts:       []namedContext{{Name: "kubetest", Context: contextDetails{Cluster: "kubetest", User: "kubetest"}}},
		CurrentContext: "kubetest",
	}, "", "  ")
}

// WriteKubeconfig writes KubeconfigData(u) to path (mode 0600).
func (c *Cluster) WriteKubeconfig(path string, u User) error {
	data, err := c.KubeconfigData(u)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// Kubeconfig writes a kubeconfig for u into a new temporary directory of the
// test and returns its path.
func (c *Cluster) Kubeconfig(t testing.TB, u User) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.WriteKubeconfig(path, u); err != nil {
		t.Fatal(err)
	}
	return path
}

// ClientCertUser returns a User authenticating with a new client
// certificate for user in groups.
func (c *Cluster) ClientCertUser(user string, groups ...string) (User, error) {
	certPEM, keyPEM, err := c.ca.ClientCert(user, groups...)
	if err != nil {
		return User{}, err
	}
	return User{ClientCertPEM: certPEM, ClientKeyPEM: keyPEM}, nil
}
