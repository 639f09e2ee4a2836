package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/devicelogin/kubectl-device-login/cache/minijson"
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

// decodeWithEncodingJSON is how Decode read files before it had its own
// reader, and the reference it must match.
func decodeWithEncodingJSON(data []byte) (file, error) {
	var v file
	err := json.NewDecoder(bytes.NewReader(data)).Decode(&v)
	return v, err
}

func compareRead(t *testing.T, data []byte) {
	t.Helper()
	want, werr := decodeWithEncodingJSON(data)
	var got file
	gerr := got.read(minijson.NewReader(string(data)))
	shown := data[:min(len(data), 300)]
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("encoding/json says %v, read says %v, for %q", werr, gerr, shown)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("for %q\nencoding/json gives %#v\nread gives          %#v", shown, want, got)
	}
}

// FuzzReadMatchesEncodingJSON is the differential test of the session
// file reader: for any input, it accepts what a json.Decoder decoding
// into a file accepts, refuses what it refuses, and gives the same
// entry. Its seeds (and FuzzDecode's files) are in testdata/fuzz.
func FuzzReadMatchesEncodingJSON(f *testing.F) {
	for _, e := range []*Entry{entry(), fullEntry()} {
		data, err := e.encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(compareRead)
}

// fullEntry is an entry with every field set (found by reflection, so
// that a field added later is covered without anyone remembering to).
func fullEntry() *Entry {
	e := entry()
	fill := func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			switch x := f.Addr().Interface().(type) {
			case *string:
				*x = "value of " + v.Type().Field(i).Name + " <&> é \u2028"
			case *[]string:
				*x = []string{"one " + v.Type().Field(i).Name, "two"}
			case *time.Time:
				*x = time.Date(2031, 2, 3, 4, 5, 6, 7, time.FixedZone("", 3600))
			}
		}
	}
	fill(reflect.ValueOf(e).Elem())
	fill(reflect.ValueOf(&e.Key).Elem())
	return e
}

// TestReadHasEveryField checks that read knows every field: an entry
// with all of them set reads back whole.
func TestReadHasEveryField(t *testing.T) {
	e := fullEntry()
	data, err := e.encode()
	if err != nil {
		t.Fatal(err)
	}
	var got file
	if err := got.read(minijson.NewReader(string(data))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Entry, *e) {
		t.Fatalf("read back\n%#v\nwant\n%#v", got.Entry, *e)
	}
	compareRead(t, data)
}

// TestDecodeCorpusMatchesEncodingJSON runs FuzzDecode's seed files
// through the differential test too.
func TestDecodeCorpusMatchesEncodingJSON(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed files: %v", err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range corpusValues(t, data) {
			compareRead(t, v)
		}
	}
}

// corpusValues reads the []byte values of a "go test fuzz v1" file.
func corpusValues(t *testing.T, data []byte) [][]byte {
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if lines[0] != "go test fuzz v1" {
		t.Fatalf("not a corpus file: %q", lines[0])
	}
	var out [][]byte
	for _, l := range lines[1:] {
		s, ok := strings.CutPrefix(l, "[]byte(")
		if !ok {
			continue
		}
		v, err := strconv.Unquote(strings.TrimSuffix(s, ")"))
		if err != nil {
			t.Fatalf("corpus line %q: %v", l, err)
		}
		out = append(out, []byte(v))
	}
	return out
}

// keyIDWithEncodingJSON is how Key.ID wrote the hashed array before it
// had its own encoder.
func keyIDWithEncodingJSON(k Key) string {
	n := k.Normalize()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode([]any{keyVersion, n.Issuer, n.ClientID, n.Scopes, n.ExtraParams, n.Token})
	sum := sha256.Sum256(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return hex.EncodeToString(sum[:16])
}

// FuzzKeyIDMatchesEncodingJSON checks that Key.ID hashes what
// encoding/json wrote, for any strings: the IDs of existing sessions
// must not change.
func FuzzKeyIDMatchesEncodingJSON(f *testing.F) {
	f.Add("https://auth.example.com/", "kubectl", "openid", "offline_access", "audience=k8s", "access_token")
	f.Add("https://a/<b>&c", "\u2028\x00\"\\", "\xff", "", "é😀", "id_token")
	f.Fuzz(func(t *testing.T, issuer, client, scope1, scope2, param, token string) {
		for _, k := range []Key{
			{Issuer: issuer, ClientID: client, Scopes: []string{scope1, scope2}, ExtraParams: []string{param}, Token: token},
			{Issuer: issuer, ClientID: client, Token: token},
		} {
			if got, want := k.ID(), keyIDWithEncodingJSON(k); got != want {
				t.Fatalf("Key.ID() of %#v = %s, encoding/json's form hashes to %s", k, got, want)
			}
		}
	})
}
