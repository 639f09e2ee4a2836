package terminal

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sanitize makes a string that came from a server safe to print on a
// terminal: control characters (C0, C1, DEL, so ESC/CSI/OSC sequences, CR
// and BEL too), bidirectional overrides and isolates, other invisible
// format characters and invalid UTF-8 are dropped, and the result is cut
// to at most max runes, ending in "…" when cut.
func Sanitize(s string, max int) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size <= 1 {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			continue
		}
		if n == max {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
