package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestHelpListsEnumeratedValues checks that --help lists the values of
// every flag that takes one of a few, which describe adds only when help
// is printed (not when the flags are defined, on every run).
func TestHelpListsEnumeratedValues(t *testing.T) {
	checked := 0
	for _, cmd := range commands() {
		var out, errs bytes.Buffer
		if code := run(context.Background(), []string{cmd.name, "--help"}, &out, &errs); code != 0 {
			t.Fatalf("%s --help: exit %d: %s", cmd.name, code, errs.String())
		}
		lines := strings.Split(out.String(), "\n")
		flagSet(cmd, &values{}).VisitAll(func(f *pflag.Flag) {
			values := enumerated(cmd, f)
			if !takesValue(f) || values == nil {
				return
			}
			want := f.Usage + ": " + strings.Join(values, ", ")
			for _, l := range lines {
				if strings.Contains(l, "--"+f.Name+" ") && strings.Contains(l, want) {
					checked++
					return
				}
			}
			t.Errorf("%s --help does not say %q for --%s:\n%s", cmd.name, want, f.Name, out.String())
		})
	}
	if checked < 10 {
		t.Errorf("only %d enumerated flags checked", checked)
	}
}
