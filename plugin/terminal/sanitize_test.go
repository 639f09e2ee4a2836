package terminal

import (
	"testing"
	"time"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\x1b[2Jb", 10, "a[2Jb"},                     // ESC goes; the rest is harmless text
		{"title\x1b]0;pwned\x07", 20, "title]0;pwned"}, // OSC and BEL
		{"line\r\nnext", 20, "linenext"},
		{"\u202eevil\u202c\u200b", 10, "evil"}, // bidi override, zero-width space
		{"\u009b31m", 10, "31m"},               // C1 CSI as a character
		{"bad\xffutf8", 10, "badutf8"},         // invalid UTF-8
		{"\u2028sep\u2029", 10, "sep"},
		{"héllo wörld", 5, "héllo…"}, // cut by runes, with an ellipsis
		{"exact", 5, "exact"},
		{"", 5, ""},
		{"abc", 0, "…"},
	} {
		if got := Sanitize(tc.in, tc.max); got != tc.want {
			t.Errorf("Sanitize(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestHumanDurationAndClock(t *testing.T) {
	for d, want := range map[string]string{"45s": "45 s", "2m": "2 min", "3m20s": "3m20s", "1h5m": "1h05m", "1400ms": "1 s"} {
		if got := HumanDuration(mustDuration(t, d)); got != want {
			t.Errorf("HumanDuration(%s) = %q, want %q", d, got, want)
		}
	}
	if got := Clock(mustDuration(t, "9m5s")); got != "9:05" {
		t.Errorf("Clock = %q", got)
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
