// Package terminaltest checks that text is safe to show on a terminal,
// for the tests of every package that prints what came from outside. It
// does not use terminal.Sanitize, so that it can check it.
package terminaltest

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Unsafe returns the first rune of s that could act on a terminal or hide
// text: control characters (newlines only when allowed), format
// characters such as bidirectional overrides, line and paragraph
// separators, and utf8.RuneError for invalid UTF-8. ok is false when
// there is none.
func Unsafe(s string, newlines bool) (r rune, ok bool) {
	if !utf8.ValidString(s) {
		return utf8.RuneError, true
	}
	for _, r := range s {
		if r == '\n' && newlines {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return r, true
		}
	}
	return 0, false
}

// Check fails the test when s could act on a terminal (see Unsafe), or
// when one of its lines is longer than max runes.
func Check(t testing.TB, what, s string, newlines bool, max int) {
	t.Helper()
	if r, bad := Unsafe(s, newlines); bad {
		t.Fatalf("%s carries %U: %q", what, r, s)
	}
	for _, line := range strings.Split(s, "\n") {
		if n := utf8.RuneCountInString(line); n > max {
			t.Fatalf("%s has a line of %d runes (limit %d)", what, n, max)
		}
	}
}
