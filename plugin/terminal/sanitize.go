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
		if dropped(r, size) {
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

// Plain reports whether s is safe on a terminal as it is: whether
// Sanitize would keep every rune of it.
func Plain(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if dropped(r, size) {
			return false
		}
		i += size
	}
	return true
}

// dropped tells whether Sanitize drops a rune decoded with this size:
// invalid UTF-8, a control character, an invisible format character or a
// line or paragraph separator.
func dropped(r rune, size int) bool {
	return r == utf8.RuneError && size <= 1 ||
		unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}
