package setup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// kubeconfigJSON is the part of `kubectl config view -o json` setup
// reads. (encoding/json matches the field names without regard to case.)
type kubeconfigJSON struct {
	Users    []userJSON
	Contexts []contextJSON
	Clusters []struct{ Name string }
}

type userJSON struct {
	Name string
	User struct{ Exec *execJSON }
}

type contextJSON struct {
	Name    string
	Context struct{ Cluster, User string }
}

type execJSON struct {
	Command, APIVersion, InstallHint, InteractiveMode string
	Args                                              []string
	Env                                               []envJSON
	ProvideClusterInfo                                bool
}

type envJSON struct{ Name, Value string }

func parseKubeconfigJSON(b []byte) (*kubeconfigJSON, error) {
	var cfg kubeconfigJSON
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("kubectl config view printed something that is not JSON: %s", provider.JSONProblem(err))
	}
	return &cfg, nil
}

// user is the entry kubectl uses for name (the first), or nil.
func (k *kubeconfigJSON) user(name string) *userJSON {
	for i := range k.Users {
		if k.Users[i].Name == name {
			return &k.Users[i]
		}
	}
	return nil
}

// context is the context named name, or nil.
func (k *kubeconfigJSON) context(name string) *contextJSON {
	for i := range k.Contexts {
		if k.Contexts[i].Name == name {
			return &k.Contexts[i]
		}
	}
	return nil
}

func (k *kubeconfigJSON) hasCluster(name string) bool {
	for _, c := range k.Clusters {
		if c.Name == name {
			return true
		}
	}
	return false
}

// clusterList names the clusters for a message.
func (k *kubeconfigJSON) clusterList() string {
	if len(k.Clusters) == 0 {
		return "it has no clusters yet; add one with kubectl config set-cluster"
	}
	names := make([]string, len(k.Clusters))
	for i, c := range k.Clusters {
		names[i] = show(c.Name)
	}
	return "clusters there: " + strings.Join(names, ", ")
}

// errNoUser says that a kubeconfig file has no entry for the user.
var errNoUser = errors.New("no such user")

// execEdit is what setup changes in a user's exec block itself, because
// kubectl config set-credentials cannot: the installHint; interactiveMode
// and provideClusterInfo (flags only kubectl 1.30 and later have); and the
// client secret in env (set-credentials would put it on kubectl's command
// line, where every user of the machine can read it).
type execEdit struct {
	installHint, interactiveMode string
	provideClusterInfo           bool
	// secret becomes the value of plugin.ClientSecretEnv; empty removes
	// that variable. Other variables are left as they are.
	secret string
}

// editKubeconfig applies e to the exec block of user in a kubeconfig
// document, through a YAML node tree: comments, key order and the style
// of everything else are kept. It returns errNoUser when the document
// has no such user.
func editKubeconfig(data []byte, user string, e execEdit) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("it is not valid YAML (%v)", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, errNoUser
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("it is not a kubeconfig (its top level is not a mapping)")
	}
	users := mappingValue(root, "users")
	if users == nil || users.Kind != yaml.SequenceNode {
		return nil, errNoUser
	}
	for _, item := range users.Content {
		name := mappingValue(item, "name")
		if name == nil || name.Kind != yaml.ScalarNode || name.Value != user {
			continue
		}
		exec := mappingValue(mappingValue(item, "user"), "exec")
		if exec == nil || exec.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("its user %s has no exec block", show(user))
		}
		hint, mode := &yaml.Node{}, &yaml.Node{}
		hint.SetString(e.installHint)
		setMappingValue(exec, "installHint", hint)
		mode.SetString(e.interactiveMode)
		setMappingValue(exec, "interactiveMode", mode)
		setMappingValue(exec, "provideClusterInfo", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(e.provideClusterInfo)})
		setSecretEnv(exec, e.secret)
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		enc.CompactSeqIndent() // as kubectl writes lists
		if err := enc.Encode(&doc); err != nil {
			return nil, err
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	return nil, errNoUser
}

// mappingValue is the value of key in mapping m, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setMappingValue replaces the value of key in m, or inserts the key
// before the first key that sorts after it (kubectl writes keys in
// alphabetical order).
func setMappingValue(m *yaml.Node, key string, v *yaml.Node) {
	at := len(m.Content)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i].Value
		if k == key {
			v.LineComment = m.Content[i+1].LineComment
			m.Content[i+1] = v
			return
		}
		if k > key && at == len(m.Content) {
			at = i
		}
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
	m.Content = append(m.Content[:at], append([]*yaml.Node{k, v}, m.Content[at:]...)...)
}

// setSecretEnv removes plugin.ClientSecretEnv from the exec block's env
// and, when secret is set, adds it back with that value.
func setSecretEnv(exec *yaml.Node, secret string) {
	env := mappingValue(exec, "env")
	if env != nil && env.Kind == yaml.SequenceNode {
		kept := env.Content[:0]
		for _, v := range env.Content {
			if n := mappingValue(v, "name"); n == nil || n.Value != plugin.ClientSecretEnv {
				kept = append(kept, v)
			}
		}
		env.Content = kept
	}
	if secret == "" {
		return
	}
	if env == nil || env.Kind != yaml.SequenceNode {
		env = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		setMappingValue(exec, "env", env)
	}
	env.Style &^= yaml.FlowStyle
	name, value := &yaml.Node{}, &yaml.Node{}
	name.SetString(plugin.ClientSecretEnv)
	value.SetString(secret)
	env.Content = append(env.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "name"}, name,
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "value"}, value,
	}})
}

// editFile edits the exec block of user in the kubeconfig at path. A
// symbolic link is followed, as kubectl does, so that the file it points
// at is edited and the link stays; the file keeps its mode.
func editFile(path, user string, e execEdit) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	st, err := os.Stat(target)
	if err != nil {
		return err
	}
	data, err := cache.ReadRegularFile(target, maxKubeconfig)
	if err != nil {
		return err
	}
	edited, err := editKubeconfig(data, user, e)
	if err != nil {
		if errors.Is(err, errNoUser) {
			return err
		}
		return fmt.Errorf("%s: %v", target, err)
	}
	return cache.WriteFileAtomic(target, edited, st.Mode().Perm())
}

// maxKubeconfig is the largest kubeconfig setup edits.
const maxKubeconfig = 16 << 20

// saved holds kubeconfig files as they were, to put back when a step
// fails: the contents of those that existed, nil for those that did not.
type saved map[string][]byte

func snapshot(paths []string) saved {
	s := saved{}
	for _, p := range paths {
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			// Only a path that is not there at all (not even as a
			// dangling link) is removed again.
			if _, lerr := os.Lstat(p); errors.Is(lerr, os.ErrNotExist) {
				s[p] = nil
			}
			continue
		}
		if data, err := cache.ReadRegularFile(target, maxKubeconfig); err == nil {
			s[target] = data
		}
	}
	return s
}

// restore puts every file back as it was.
func (s saved) restore() error {
	var errs []error
	for path, data := range s {
		if data == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		st, err := os.Stat(path)
		mode := os.FileMode(0o600)
		if err == nil {
			mode = st.Mode().Perm()
		}
		if err := cache.WriteFileAtomic(path, data, mode); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// plainText is the one rule for every string setup takes from a
// kubeconfig or writes into one: control and invisible characters (escape
// sequences, line breaks, bidirectional overrides) and invalid UTF-8 are
// refused. Such a string could rewrite the terminal it is printed on,
// disguise a flag, or break out of a comment in --dry-run's plan.
func plainText(s string) bool {
	return terminal.Sanitize(s, len(s)) == s
}

// show is how setup prints a string that came from a kubeconfig or the
// command line: sanitized, cut, and quoted.
func show(s string) string {
	return strconv.Quote(terminal.Sanitize(s, 100))
}
