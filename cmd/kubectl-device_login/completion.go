package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

const completionUsage = `Usage: kubectl device-login completion bash|zsh|fish

Prints a completion script for kubectl-device_login. For example:
  kubectl-device_login completion bash > ~/.local/share/bash-completion/completions/kubectl-device_login
  kubectl-device_login completion zsh > "${fpath[1]}/_kubectl-device_login"
  kubectl-device_login completion fish > ~/.config/fish/completions/kubectl-device_login.fish
`

// flagsOf lists a command's long flags.
func flagsOf(c command) []*pflag.Flag {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	fs.SortFlags = false
	c.flags(fs, &values{})
	var out []*pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) { out = append(out, f) })
	return out
}

func runCompletion(ctx context.Context, e *env, fs *pflag.FlagSet, v *values) error {
	if fs.NArg() != 1 {
		return fmt.Errorf("name one shell: bash, zsh or fish; e.g. kubectl device-login completion bash")
	}
	switch fs.Arg(0) {
	case "bash":
		writeBash(e.stdout, false)
	case "zsh":
		writeBash(e.stdout, true)
	case "fish":
		writeFish(e.stdout)
	default:
		return fmt.Errorf("no completion for %q; choose bash, zsh or fish", fs.Arg(0))
	}
	return nil
}

// writeBash writes a bash completion script; zsh loads the same one
// through bashcompinit.
func writeBash(w io.Writer, zsh bool) {
	if zsh {
		fmt.Fprintln(w, "#compdef kubectl-device_login\nautoload -U +X bashcompinit && bashcompinit")
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	fmt.Fprintf(w, `# completion for kubectl-device_login (kubectl device-login)
_kubectl_device_login() {
  local cur=${COMP_WORDS[COMP_CWORD]} opts
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
    return
  fi
  case ${COMP_WORDS[1]} in
`, strings.Join(names, " "))
	for _, c := range commands() {
		var fl []string
		for _, f := range flagsOf(c) {
			fl = append(fl, "--"+f.Name)
		}
		if c.name == "completion" {
			fl = []string{"bash", "zsh", "fish"}
		}
		fmt.Fprintf(w, "    %s) opts=%q ;;\n", c.name, strings.Join(fl, " "))
	}
	fmt.Fprint(w, `    *) opts="" ;;
  esac
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o default -F _kubectl_device_login kubectl-device_login
`)
}

func writeFish(w io.Writer) {
	fmt.Fprintln(w, "# completion for kubectl-device_login (kubectl device-login)")
	for _, c := range commands() {
		fmt.Fprintf(w, "complete -c kubectl-device_login -f -n __fish_use_subcommand -a %s -d %q\n", c.name, c.summary)
	}
	for _, c := range commands() {
		for _, f := range flagsOf(c) {
			fmt.Fprintf(w, "complete -c kubectl-device_login -n '__fish_seen_subcommand_from %s' -l %s -d %q\n", c.name, f.Name, f.Usage)
		}
	}
}
