package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/status"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// Completion has one engine: `kubectl-device_login __complete WORDS...`
// answers for the words after the plugin's name, the last being the word
// under the cursor, in the format of cobra's __complete (one candidate a
// line, optionally followed by a tab and a description, then a line
// ":DIRECTIVE"). kubectl (1.26+) runs an executable named
// kubectl_complete-device_login for `kubectl device-login <TAB>` and
// passes that format on to its own shell script; the scripts that
// `completion` prints for bash, zsh, fish and PowerShell read it too. The
// candidates come from the command table and the flag sets in main.go,
// the enumerated values from plugin.Allowed, and kubeconfig names from
// kubectl.

const (
	// completeCommand is the hidden command that answers completions.
	completeCommand = "__complete"
	// completerName is the name kubectl looks for on PATH to complete
	// `kubectl device-login ...`; installed as a link to this binary,
	// the binary answers completions under it.
	completerName = "kubectl_complete-device_login"
	// completionSummary is `completion`'s line in the command list.
	completionSummary = "print a shell completion script (bash, zsh, fish, powershell, kubectl)"
)

// Directives, as cobra's ShellCompDirective bits, which kubectl's
// completion script reads from the last line (1 means error, 2 no space
// after the candidate; this program never answers those).
const (
	directiveFiles      = 0  // no candidates: complete file names
	directiveNoFileComp = 4  // no candidates means none, not file names
	directiveFilterDirs = 16 // no candidates: complete directory names
)

// kubectlTimeout bounds the kubectl run that lists kubeconfig names: a
// completion that hangs is worse than one without names.
const kubectlTimeout = 5 * time.Second

// commandLine is the argument list run gets from the process's: its own
// arguments, or, when the binary was started under kubectl's completer
// name (a link to it), __complete and the words kubectl passes.
func commandLine(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	if strings.TrimSuffix(filepath.Base(argv[0]), ".exe") == completerName {
		return append([]string{completeCommand}, argv[1:]...)
	}
	return argv[1:]
}

const completionUsage = `Usage: kubectl device-login completion bash|zsh|fish|powershell|kubectl

Prints a completion script. Each one asks kubectl-device_login itself for
the words, so it never goes stale. For example:
  kubectl-device_login completion bash > ~/.local/share/bash-completion/completions/kubectl-device_login
  kubectl-device_login completion zsh > "${fpath[1]}/_kubectl-device_login"
  kubectl-device_login completion fish > ~/.config/fish/completions/kubectl-device_login.fish
  kubectl-device_login completion powershell | Out-String | Invoke-Expression   # in $PROFILE

'kubectl' prints the program kubectl (1.26+) runs to complete
'kubectl device-login <TAB>'. 'make install' installs it; with krew,
install it next to the plugin:
  kubectl device-login completion kubectl > "${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-device_login"
  chmod +x "${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-device_login"
`

// shell is one script `completion` prints.
type shell struct {
	name, what string
	write      func(w io.Writer)
}

func shells() []shell {
	return []shell{
		{"bash", "bash 4 or later", writeBash},
		{"zsh", "zsh", writeZsh},
		{"fish", "fish", writeFish},
		{"powershell", "PowerShell", writePowerShell},
		{"kubectl", "the program kubectl runs for kubectl device-login <TAB>", writeKubectlCompleter},
	}
}

func shellNames() []string {
	var names []string
	for _, s := range shells() {
		names = append(names, s.name)
	}
	return names
}

func runCompletion(ctx context.Context, e *env, fs *pflag.FlagSet, v *values) error {
	names := strings.Join(shellNames(), ", ")
	if fs.NArg() != 1 {
		return fmt.Errorf("name one shell: %s; e.g. kubectl device-login completion bash", names)
	}
	for _, s := range shells() {
		if s.name == fs.Arg(0) {
			s.write(e.stdout)
			return nil
		}
	}
	return fmt.Errorf("no completion for %q; choose %s", terminal.Sanitize(fs.Arg(0), 40), names)
}

// candidate is one completion and what it means.
type candidate struct{ value, desc string }

// answer is what __complete prints.
type answer struct {
	candidates []candidate
	directive  int
}

// runComplete answers `__complete WORDS...`. It always succeeds: a shell
// shows nothing for an answer without candidates.
func runComplete(ctx context.Context, e *env, words []string) int {
	a := complete(ctx, words)
	var b strings.Builder
	for _, c := range a.candidates {
		b.WriteString(c.value)
		if c.desc != "" {
			b.WriteString("\t" + terminal.Sanitize(c.desc, 200))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, ":%d\n", a.directive)
	io.WriteString(e.stdout, b.String())
	return 0
}

// line is what the words before the one under the cursor say.
type line struct {
	given      map[string]bool   // flags given
	value      map[string]string // last value of each flag given
	pending    *pflag.Flag       // flag whose value is the word under the cursor
	positional int               // arguments that are not flags
	dashdash   bool              // after --, everything is an argument
}

// complete completes a command line; kubectl lists kubeconfig names.
func complete(ctx context.Context, words []string) answer {
	if len(words) == 0 {
		words = []string{""}
	}
	before, cur := words[:len(words)-1], words[len(words)-1]
	cmds := commands()
	if len(before) == 0 {
		var a answer
		for _, cmd := range cmds {
			a.add(cur, cmd.name, cmd.summary)
		}
		a.directive = directiveNoFileComp
		return a
	}
	i := slices.IndexFunc(cmds, func(cmd command) bool { return cmd.name == before[0] })
	if i < 0 {
		return answer{directive: directiveNoFileComp}
	}
	cmd := cmds[i]
	fs := flagSet(cmd, &values{})
	l := scan(fs, before[1:])
	switch {
	case l.pending != nil:
		return flagValues(ctx, cmd, l.pending, cur, l)
	case !l.dashdash && strings.HasPrefix(cur, "-") && strings.Contains(cur, "="):
		name, val, _ := strings.Cut(cur, "=")
		var f *pflag.Flag
		if long, ok := strings.CutPrefix(name, "--"); ok {
			f = fs.Lookup(long)
		} else {
			// -o=json, or -vo=json: the last letter is the flag.
			f = fs.ShorthandLookup(name[len(name)-1:])
		}
		if f == nil || f.Hidden {
			return answer{directive: directiveNoFileComp}
		}
		return flagValues(ctx, cmd, f, val, l)
	case !l.dashdash && (strings.HasPrefix(cur, "-") || cur == "" && !takesArguments(cmd)):
		return flagNames(cmd, fs, cur, l)
	case takesArguments(cmd) && l.positional == 0:
		// completion's one argument: the shell.
		var a answer
		for _, s := range shells() {
			a.add(cur, s.name, s.what)
		}
		a.directive = directiveNoFileComp
		return a
	}
	return answer{directive: directiveNoFileComp}
}

// takesArguments tells whether a command takes arguments besides flags,
// as parse in main.go decides.
func takesArguments(cmd command) bool { return cmd.name == "completion" }

// takesValue tells whether a flag needs a value (--flag value), as
// opposed to a boolean (--flag alone).
func takesValue(f *pflag.Flag) bool { return f.NoOptDefVal == "" }

// scan reads the words between the command and the word under the
// cursor as pflag would: --flag=value, --flag value, -o value, -ovalue,
// -vo value, booleans, and --.
func scan(fs *pflag.FlagSet, words []string) line {
	l := line{given: map[string]bool{}, value: map[string]string{}}
	for _, w := range words {
		switch {
		case l.pending != nil:
			l.value[l.pending.Name] = w
			l.pending = nil
		case l.dashdash || w == "-" || !strings.HasPrefix(w, "-"):
			l.positional++
		case w == "--":
			l.dashdash = true
		case strings.HasPrefix(w, "--"):
			name, val, hasValue := strings.Cut(w[2:], "=")
			f := fs.Lookup(name)
			if f == nil {
				continue
			}
			l.given[f.Name] = true
			switch {
			case hasValue:
				l.value[f.Name] = val
			case takesValue(f):
				l.pending = f
			}
		default:
			// A group of short flags; one that takes a value takes the
			// rest of the word, or else the next word.
			letters := w[1:]
			for j := 0; j < len(letters); j++ {
				f := fs.ShorthandLookup(letters[j : j+1])
				if f == nil {
					break
				}
				l.given[f.Name] = true
				if !takesValue(f) {
					continue
				}
				if rest := strings.TrimPrefix(letters[j+1:], "="); rest != "" {
					l.value[f.Name] = rest
				} else {
					l.pending = f
				}
				break
			}
		}
	}
	return l
}

// flagNames lists the flags that start with prefix, long and short,
// leaving out those already given that cannot be repeated.
func flagNames(cmd command, fs *pflag.FlagSet, prefix string, l line) answer {
	a := answer{directive: directiveNoFileComp}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		if _, repeatable := f.Value.(pflag.SliceValue); l.given[f.Name] && !repeatable {
			return
		}
		a.add(prefix, "--"+f.Name, describe(cmd, f))
		if f.Shorthand != "" {
			a.add(prefix, "-"+f.Shorthand, describe(cmd, f))
		}
	})
	return a
}

// fileFlags says which flags name files (directiveFiles) or directories
// (directiveFilterDirs).
func fileFlags(name string) (directive int, ok bool) {
	switch name {
	case "kubeconfig", "certificate-authority", "client-secret-file":
		return directiveFiles, true
	case "cache-dir":
		return directiveFilterDirs, true
	}
	return 0, false
}

// enumerated lists the values a command's flag takes, or nil when it
// takes any.
func enumerated(cmd command, f *pflag.Flag) []string {
	switch {
	case cmd.name == "status" && f.Name == "output":
		return status.Formats()
	case !takesValue(f):
		return []string{"true", "false"}
	}
	return plugin.Allowed(f.Name)
}

// flagValues completes the value of flag f.
func flagValues(ctx context.Context, cmd command, f *pflag.Flag, prefix string, l line) answer {
	a := answer{directive: directiveNoFileComp}
	if allowed := enumerated(cmd, f); allowed != nil {
		for _, v := range allowed {
			desc := ""
			if v == f.DefValue {
				desc = "default"
			}
			a.add(prefix, v, desc)
		}
		return a
	}
	if d, ok := fileFlags(f.Name); ok {
		return answer{directive: d}
	}
	var names []string
	switch f.Name {
	case "context":
		names = kubeconfigNames(ctx, l.value["kubeconfig"], "contexts")
	case "user":
		names = kubeconfigNames(ctx, l.value["kubeconfig"], "users")
		if !slices.Contains(names, f.DefValue) {
			a.add(prefix, f.DefValue, "default")
		}
	}
	for _, n := range names {
		a.add(prefix, n, "")
	}
	return a
}

// kubeconfigNames asks kubectl for the names of the kubeconfig's contexts
// or users (list), from the given file or else as kubectl finds it
// ($KUBECONFIG, ~/.kube/config). kubectl quotes each name, so that any
// name comes back whole; a name with a control character (an escape
// sequence would reach the terminal) or invalid UTF-8 is left out, since
// completing a changed name would name another entry. Failures give no
// names: completion has nowhere to report them.
func kubeconfigNames(ctx context.Context, kubeconfig, list string) []string {
	ctx, cancel := context.WithTimeout(ctx, kubectlTimeout)
	defer cancel()
	var args []string
	if kubeconfig != "" {
		args = append(args, "--kubeconfig="+kubeconfig)
	}
	args = append(args, "config", "view", "-o", "go-template",
		`--template={{range .`+list+`}}{{printf "%q\n" .name}}{{end}}`)
	out, err := exec.CommandContext(ctx, "kubectl", args...).Output()
	if err != nil {
		return nil
	}
	var names []string
	for _, q := range strings.Split(string(out), "\n") {
		name, err := strconv.Unquote(q)
		if err != nil || name == "" || !terminal.Plain(name) || slices.Contains(names, name) {
			continue
		}
		names = append(names, name)
	}
	return names
}

// add adds value when it starts with prefix.
func (a *answer) add(prefix, value, desc string) {
	if strings.HasPrefix(value, prefix) {
		a.candidates = append(a.candidates, candidate{value, desc})
	}
}

// The scripts below only carry the words between the shell and
// `kubectl-device_login __complete`: what to complete is decided there.
