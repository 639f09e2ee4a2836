package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// commandRE finds an invocation of the plugin in a line of shell.
var commandRE = regexp.MustCompile(`(?:kubectl device-login|kubectl-device_login)[ \t]+([a-z-]+)([^)|;&\n]*)`)

// shapes returns, for every invocation of the plugin in text, its
// subcommand and sorted flag names: what a script must exercise.
func shapes(text string) []string {
	var out []string
	for _, m := range commandRE.FindAllStringSubmatch(text, -1) {
		var flags []string
		for _, f := range strings.Fields(m[2]) {
			if strings.HasPrefix(f, "-") {
				name, _, _ := strings.Cut(f, "=")
				flags = append(flags, name)
			}
		}
		slices.Sort(flags)
		out = append(out, strings.TrimSpace(m[1]+" "+strings.Join(slices.Compact(flags), " ")))
	}
	return out
}

// shellBlocks returns the shell code blocks of a Markdown file, with line
// continuations joined.
func shellBlocks(md string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			lang := strings.TrimPrefix(trimmed, "```")
			in = !in && (lang == "sh" || lang == "bash" || lang == "console" || lang == "shell")
		case in:
			if i := strings.Index(trimmed, " #"); i >= 0 {
				trimmed = strings.TrimSpace(trimmed[:i])
			}
			if strings.HasSuffix(trimmed, `\`) {
				b.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			} else {
				b.WriteString(trimmed + "\n")
			}
		}
	}
	return b.String()
}

// TestEveryDocumentedCommandIsScripted: each command the README and docs/
// show (subcommand and flags) is run by one of the scripts.
func TestEveryDocumentedCommandIsScripted(t *testing.T) {
	scripts, _ := filepath.Glob("testdata/script/*.txtar")
	var tested []string
	for _, s := range scripts {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimLeft(line, "! "), "exec ") {
				tested = append(tested, shapes(line)...)
			}
		}
	}
	docs, _ := filepath.Glob("../../docs/*.md")
	docs = append(docs, "../../README.md")
	checked := 0
	for _, d := range docs {
		data, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, shape := range shapes(shellBlocks(string(data))) {
			checked++
			if !slices.Contains(tested, shape) {
				t.Errorf("%s shows `%s`, which no script in testdata/script runs", filepath.Base(d), shape)
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d documented commands found; is the extraction broken?", checked)
	}
}

// TestArchitecturePackagesExist keeps docs/architecture.md true: every
// package and test file it names exists.
func TestArchitecturePackagesExist(t *testing.T) {
	data, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`((?:cmd|plugin|cache)(?:/[a-z_./-]+)?)`").FindAllStringSubmatch(string(data), -1)
	if len(named) < 10 {
		t.Fatalf("found only %d names in docs/architecture.md", len(named))
	}
	for _, m := range named {
		path := filepath.Join("..", "..", m[1])
		st, err := os.Stat(path)
		switch {
		case err != nil:
			t.Errorf("docs/architecture.md names %s, which does not exist", m[1])
		case st.IsDir() && strings.Contains(m[1], "/") && !strings.Contains(m[1], "testdata"):
			if gofiles, _ := filepath.Glob(filepath.Join(path, "*.go")); len(gofiles) == 0 {
				t.Errorf("docs/architecture.md names %s, which holds no Go package", m[1])
			}
		}
	}
}
