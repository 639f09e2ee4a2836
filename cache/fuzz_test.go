package cache

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzDecode feeds arbitrary bytes to Decode, which reads every cache file
// before anything else looks at it. The seeds in testdata/fuzz/FuzzDecode
// run as part of every `go test`.
func FuzzDecode(f *testing.F) {
	good, err := json.Marshal(file{Format: Format, Entry: *entry()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":"kubectl-device-login/session/v1","expiry":"9999-12-31T23:59:59Z","issued_at":"0001-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, reason := Decode(data)
		if (e == nil) == (reason == "") {
			t.Fatalf("Decode gave entry %v and reason %q: exactly one must be set", e != nil, reason)
		}
		if reason != "" {
			if n := utf8.RuneCountInString(reason); n > 300 {
				t.Errorf("a %d-rune reason", n)
			}
			if !utf8.ValidString(reason) {
				t.Fatalf("the reason is not valid UTF-8: %q", reason)
			}
			for _, r := range reason {
				if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
					t.Fatalf("the reason carries %U: %q", r, reason)
				}
			}
			return
		}
		// Whatever decodes must save again: a cache file the plugin
		// accepts but cannot rewrite would wedge the session.
		if _, err := json.Marshal(file{Format: Format, Entry: *e}); err != nil {
			t.Fatalf("a decoded entry does not encode: %v", err)
		}
	})
}

// TestDecodeRefusesOversizeInputUnread checks the memory bound: a file
// over 1 MiB is refused before it is parsed.
func TestDecodeRefusesOversizeInputUnread(t *testing.T) {
	big := []byte(`{"format":"` + Format + `","access_token":"` + strings.Repeat("A", maxFileSize) + `"}`)
	allocs := testing.AllocsPerRun(5, func() {
		if e, reason := Decode(big); e != nil || !strings.Contains(reason, "larger than 1 MiB") {
			t.Fatalf("oversize input: %v %q", e, reason)
		}
	})
	if allocs > 0 {
		t.Errorf("Decode allocated %v times for input it should not read", allocs)
	}
}
