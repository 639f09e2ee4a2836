package setup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
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
// document. It edits a syntax tree that keeps comments and key order, and
// writes only the exec block anew: every byte before and after it stays
// as it was. (Should the printer not reproduce the block as it stands,
// for an unusual layout, the whole document is printed from the tree.)
// It returns errNoUser when the document has no such user.
func editKubeconfig(data []byte, user string, e execEdit) ([]byte, error) {
	f, err := parser.ParseBytes(data, parser.ParseComments, parser.AllowDuplicateMapKey())
	if err != nil {
		return nil, fmt.Errorf("it is not valid YAML (%s)", yamlProblem(err))
	}
	docs := f.Docs
	for len(docs) > 0 && isDirective(docs[0].Body) {
		docs = docs[1:] // %YAML or %TAG, before the document itself
	}
	if len(docs) == 0 {
		return nil, errNoUser
	}
	var root *ast.MappingNode
	switch body := bare(docs[0].Body).(type) {
	case nil, *ast.CommentGroupNode:
		return nil, errNoUser
	case *ast.MappingNode:
		root = body
	default:
		return nil, errors.New("it is not a kubeconfig (its top level is not a mapping)")
	}
	users, _ := bare(mappingValue(root, "users")).(*ast.SequenceNode)
	if users == nil {
		return nil, errNoUser
	}
	for _, item := range users.Values {
		item, _ := bare(item).(*ast.MappingNode)
		if name, ok := scalarText(mappingValue(item, "name")); !ok || name != user {
			continue
		}
		account, _ := bare(mappingValue(item, "user")).(*ast.MappingNode)
		exec, _ := bare(mappingValue(account, "exec")).(*ast.MappingNode)
		if exec == nil {
			return nil, fmt.Errorf("its user %s has no exec block", show(user))
		}
		crlf := bytes.Contains(data, []byte("\r\n"))
		start, was, inPlace := locate(data, exec, crlf)
		if err := applyEdit(exec, e); err != nil {
			return nil, err
		}
		if inPlace {
			return slices.Concat(data[:start], []byte(printed(exec, crlf)), data[start+len(was):]), nil
		}
		return []byte(f.String()), nil
	}
	return nil, errNoUser
}

// applyEdit sets what e holds in the exec mapping.
func applyEdit(exec *ast.MappingNode, e execEdit) error {
	indent, flow := keyIndent(exec)
	for _, kv := range []struct{ key, value string }{
		{"installHint", yamlScalar(e.installHint, indent, flow)},
		{"interactiveMode", yamlScalar(e.interactiveMode, indent, flow)},
		{"provideClusterInfo", strconv.FormatBool(e.provideClusterInfo)},
	} {
		if err := setMappingValue(exec, kv.key, kv.value); err != nil {
			return err
		}
	}
	return setSecretEnv(exec, e.secret)
}

// bare is n without an anchor or a tag in front of it.
func bare(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
}

// scalarText is the text of a scalar node, as written for one that is not
// a string (a number, true, null).
func scalarText(n ast.Node) (string, bool) {
	switch v := bare(n).(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case *ast.MappingKeyNode:
		return scalarText(v.Value)
	case ast.ScalarNode:
		return v.GetToken().Value, true
	}
	return "", false
}

// mappingEntry is the entry of key in mapping m (the first), or nil.
func mappingEntry(m *ast.MappingNode, key string) *ast.MappingValueNode {
	if m == nil {
		return nil
	}
	for _, kv := range m.Values {
		if k, ok := scalarText(kv.Key); ok && k == key {
			return kv
		}
	}
	return nil
}

// mappingValue is the value of key in mapping m, or nil.
func mappingValue(m *ast.MappingNode, key string) ast.Node {
	if kv := mappingEntry(m, key); kv != nil {
		return kv.Value
	}
	return nil
}

// keyIndent is the indentation of a block mapping's keys; flow is true
// for a mapping in braces, where no block may go.
func keyIndent(m *ast.MappingNode) (indent string, flow bool) {
	if m.IsFlowStyle || len(m.Values) == 0 {
		return "", true
	}
	return strings.Repeat(" ", max(m.Values[0].Key.GetToken().Position.Column-1, 0)), false
}

// setMappingValue sets key in m to value (YAML text written for m's
// indentation): the entry takes the place of the key's entry, keeping its
// comments, or goes before the first key that sorts after it (kubectl
// writes keys in alphabetical order).
func setMappingValue(m *ast.MappingNode, key, value string) error {
	kv, err := parseEntry(m, key, value)
	if err != nil {
		return err
	}
	at := len(m.Values)
	for i, old := range m.Values {
		k, _ := scalarText(old.Key)
		if k == key {
			// The whole entry is replaced, not just its value: the
			// printer lays a value out by comparing its indentation
			// level with its key's, which only the parse of one text
			// gives consistently.
			kv.Comment, kv.FootComment = old.Comment, old.FootComment
			if c := old.Value.GetComment(); c != nil {
				if err := kv.Value.SetComment(c); err != nil {
					return err
				}
			}
			m.Values[i] = kv
			return nil
		}
		if k > key && at == len(m.Values) {
			at = i
		}
	}
	m.Values = slices.Insert(m.Values, at, kv)
	return nil
}

// parseEntry parses "key: value" as an entry of m: in braces for a flow
// mapping, else indented as m's keys are, so that the printer places it
// and any block in it where they belong.
func parseEntry(m *ast.MappingNode, key, value string) (*ast.MappingValueNode, error) {
	indent, flow := keyIndent(m)
	src := indent + key + ": " + value + "\n"
	if flow {
		src = "{" + key + ": " + value + "}"
	}
	n, err := parseNode(src)
	if err != nil {
		return nil, err
	}
	if kv, ok := n.(*ast.MappingNode); ok && len(kv.Values) == 1 {
		return kv.Values[0], nil
	}
	return nil, fmt.Errorf("the entry %s came out as %T", key, n)
}

// parseNode parses YAML that setup wrote itself.
func parseNode(src string) (ast.Node, error) {
	f, err := parser.ParseBytes([]byte(src), 0)
	if err != nil {
		return nil, fmt.Errorf("setup wrote YAML it cannot read back (%s)", yamlProblem(err))
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		return nil, errors.New("setup wrote YAML it cannot read back")
	}
	return f.Docs[0].Body, nil
}

// setSecretEnv removes plugin.ClientSecretEnv from the exec block's env
// and, when secret is set, adds it back with that value.
func setSecretEnv(exec *ast.MappingNode, secret string) error {
	env, _ := bare(mappingValue(exec, "env")).(*ast.SequenceNode)
	if env != nil {
		removeVariable(env, plugin.ClientSecretEnv)
	}
	if env != nil && len(env.Values) == 0 && !env.IsFlowStyle {
		// No entry is left to write the list as lines of; the printer
		// would put its [] at the start of a line.
		env = nil
		if secret == "" {
			return setMappingValue(exec, "env", "[]")
		}
	}
	if secret == "" {
		return nil
	}
	indent, flow := keyIndent(exec)
	if env == nil {
		// A list of its own, with the dashes where kubectl puts them:
		// under the key.
		if flow {
			return setMappingValue(exec, "env", "["+secretEntry(secret, "", true)+"]")
		}
		return setMappingValue(exec, "env", "\n"+secretEntry(secret, indent, false))
	}
	src := "[" + secretEntry(secret, "", true) + "]"
	if !env.IsFlowStyle {
		src = secretEntry(secret, strings.Repeat(" ", max(env.Start.Position.Column-1, 0)), false) + "\n"
	}
	n, err := parseNode(src)
	if err != nil {
		return err
	}
	item, ok := n.(*ast.SequenceNode)
	if !ok || len(item.Values) != 1 {
		return fmt.Errorf("the env entry came out as %T", n)
	}
	if len(env.ValueHeadComments) == len(env.Values) {
		env.ValueHeadComments = append(env.ValueHeadComments, nil)
	}
	if len(env.Entries) == len(env.Values) && len(item.Entries) == 1 {
		env.Entries = append(env.Entries, item.Entries[0])
	}
	env.Values = append(env.Values, item.Values[0])
	return nil
}

// secretEntry is the env entry that holds the client secret: in braces for
// a flow list, else as lines that start with a dash indented by dash.
func secretEntry(secret, dash string, flow bool) string {
	if flow {
		return "{name: " + plugin.ClientSecretEnv + ", value: " + yamlScalar(secret, "", true) + "}"
	}
	return dash + "- name: " + plugin.ClientSecretEnv + "\n" + dash + "  value: " + yamlScalar(secret, dash+"  ", false)
}

// removeVariable removes the entries named name from an env list, with
// the comments above them.
func removeVariable(env *ast.SequenceNode, name string) {
	n := len(env.Values)
	heads, entries := len(env.ValueHeadComments) == n, len(env.Entries) == n
	kept := 0
	for i, v := range env.Values {
		item, _ := bare(v).(*ast.MappingNode)
		if s, ok := scalarText(mappingValue(item, "name")); ok && s == name {
			continue
		}
		env.Values[kept] = v
		if heads {
			env.ValueHeadComments[kept] = env.ValueHeadComments[i]
		}
		if entries {
			env.Entries[kept] = env.Entries[i]
		}
		kept++
	}
	env.Values = env.Values[:kept]
	if heads {
		env.ValueHeadComments = env.ValueHeadComments[:kept]
	}
	if entries {
		env.Entries = env.Entries[:kept]
	}
}

// printed is mapping m as the printer writes it, with the line breaks of
// the file (the printer's are \n).
func printed(m *ast.MappingNode, crlf bool) string {
	if crlf {
		return strings.ReplaceAll(m.String(), "\n", "\r\n")
	}
	return m.String()
}

// isDirective says whether a document is a %YAML or %TAG line.
func isDirective(n ast.Node) bool {
	_, ok := n.(*ast.DirectiveNode)
	return ok
}

// locate finds the text of mapping m in data: where it starts, and how the
// printer writes it. inPlace says that this is exactly the text there, so
// that the edited mapping can take its place and nothing else changes.
func locate(data []byte, m *ast.MappingNode, crlf bool) (start int, text string, inPlace bool) {
	pos := m.Start.Position // the brace of a flow mapping
	if _, flow := keyIndent(m); !flow {
		// A block mapping starts at the line of its first key, or of the
		// comment above it.
		first := m.Values[0]
		pos = &token.Position{Line: first.Key.GetToken().Position.Line, Column: 1}
		if c := first.GetComment(); c != nil && len(c.Comments) > 0 {
			pos.Line = min(pos.Line, c.Comments[0].Token.Position.Line)
		}
	}
	start, ok := byteOffset(data, pos)
	text = printed(m, crlf)
	return start, text, ok && bytes.HasPrefix(data[start:], []byte(text))
}

// byteOffset is the offset in data of a line and column as the parser
// counts them: from 1, the column in characters.
func byteOffset(data []byte, pos *token.Position) (int, bool) {
	off := 0
	for line := 1; line < pos.Line; line++ {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return 0, false
		}
		off += i + 1
	}
	for col := 1; col < pos.Column; col++ {
		if off >= len(data) || data[off] == '\n' {
			return 0, false
		}
		_, size := utf8.DecodeRune(data[off:])
		off += size
	}
	return off, true
}
