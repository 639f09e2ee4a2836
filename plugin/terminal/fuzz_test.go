package terminal

import (
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/devicelogin/kubectl-device-login/plugin/terminal/terminaltest"
)

func FuzzSanitize(f *testing.F) {
	f.Add("plain text", 80)
	f.Add("a\x1b[31mred\x1b[0m\r\nb\a\u202e\u2066x\u200b\u2028\xff\xfe\u009b2J", 5)
	f.Fuzz(func(t *testing.T, s string, max int) {
		m := int(uint(max) % 2048)
		out := Sanitize(s, m)
		terminaltest.Check(t, "the result", out, false, m+1)
		if Sanitize(out, m+1) != out {
			t.Fatalf("sanitizing again changed %q", out)
		}
		if utf8.RuneCountInString(out) == m+1 && !strings.HasSuffix(out, "…") {
			t.Fatalf("a result at the limit does not end in an ellipsis: %q", out)
		}
		if Plain(s) != (Sanitize(s, len(s)) == s) {
			t.Fatalf("Plain(%q) = %t, but Sanitize keeps it whole: %t", s, Plain(s), Sanitize(s, len(s)) == s)
		}
	})
}

// TestSanitizingHugeTextIsCheap: 16 MiB of text (beyond what the fuzzer
// makes) costs no more than the output.
func TestSanitizingHugeTextIsCheap(t *testing.T) {
	huge := strings.Repeat("A", 16<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out := Sanitize(huge, 300)
	runtime.ReadMemStats(&after)
	if utf8.RuneCountInString(out) != 301 {
		t.Errorf("%d runes", utf8.RuneCountInString(out))
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("allocated %d bytes", n)
	}
}
