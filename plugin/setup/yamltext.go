package setup

import (
	"errors"
	"fmt"
	"github.com/goccy/go-yaml/token"
	"strconv"
	"strings"
	"unicode"

	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// Writing YAML that setup puts in a kubeconfig itself: scalars quoted as
// kubectl (a YAML 1.1 reader) reads them back, and the parser's
// complaints without the file's text.

// yamlProblem is the parser's complaint and the line it is about, without
// the excerpt of the file its message would show (a secret, perhaps).
func yamlProblem(err error) string {
	var pe interface {
		GetMessage() string
		GetToken() *token.Token
	}
	if !errors.As(err, &pe) {
		return "its syntax is broken"
	}
	msg := terminal.Sanitize(pe.GetMessage(), 200)
	if tk := pe.GetToken(); tk != nil && tk.Position != nil {
		return fmt.Sprintf("line %d: %s", tk.Position.Line, msg)
	}
	return msg
}

// yamlScalar writes s as a YAML scalar: plain when that cannot be read as
// anything but this string; a literal block (|) for lines of text, with
// its lines indented under a key indented by indent (not in a flow
// collection, flow); double-quoted otherwise.
func yamlScalar(s, indent string, flow bool) string {
	if plainScalar(s) {
		return s
	}
	if flow || !literalText(s) {
		// strconv.Quote's escapes (\n, \t, \x1b, \u2028…) are YAML's too.
		return strconv.Quote(s)
	}
	var b strings.Builder
	b.WriteString("|")
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for _, line := range lines {
		if line != "" {
			// Text that starts with a space needs its indentation said.
			if line[0] == ' ' {
				b.WriteString("2")
			}
			break
		}
	}
	if !strings.HasSuffix(s, "\n") {
		b.WriteString("-")
	}
	for _, line := range lines {
		b.WriteString("\n")
		if line != "" {
			b.WriteString(indent + "  " + line)
		}
	}
	return b.String()
}

// plainScalar says whether s can be written without quotes: words (no
// indicator that YAML gives a meaning, no leading digit or sign, which
// could make it a number), and none of the words YAML 1.1 or 1.2 reads as
// a boolean or null.
func plainScalar(s string) bool {
	if s == "" || strings.TrimSpace(s) != s {
		return false
	}
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return false
	}
	for i, r := range s {
		switch {
		case unicode.IsLetter(r), r == '_', r == '/':
		case i > 0 && (unicode.IsDigit(r) || strings.ContainsRune("-.+=@~^$%()!;<> ", r)):
		default:
			return false
		}
	}
	return true
}

// literalText says whether s can be a literal block: lines of printable
// text, not all blank, ending in at most one line break (a literal block
// cannot keep more once the printer has trimmed them).
func literalText(s string) bool {
	if !strings.Contains(s, "\n") || strings.HasSuffix(s, "\n\n") || strings.TrimSpace(s) == "" {
		return false
	}
	for _, r := range s {
		if r != '\n' && !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// plainText is the one rule for every string setup takes from a
// kubeconfig or writes into one: control and invisible characters (escape
// sequences, line breaks, bidirectional overrides) and invalid UTF-8 are
// refused. Such a string could rewrite the terminal it is printed on,
// disguise a flag, or break out of a comment in --dry-run's plan.
func plainText(s string) bool {
	return terminal.Plain(s)
}

// show is how setup prints a string that came from a kubeconfig or the
// command line: sanitized, cut, and quoted.
func show(s string) string {
	return strconv.Quote(terminal.Sanitize(s, 100))
}
