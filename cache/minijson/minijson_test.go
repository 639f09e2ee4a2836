package minijson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sample has a field for each reader method, with names that Unicode
// case folding reaches from other spellings ('s' from 'ſ', 'k' from the
// Kelvin sign) and one in camel case.
type sample struct {
	S     string          `json:"s"`
	B     bool            `json:"b"`
	List  []string        `json:"list"`
	Raw   json.RawMessage `json:"raw"`
	Time  time.Time       `json:"time"`
	Obj   inner           `json:"obj"`
	Ptr   *inner          `json:"ptr"`
	Camel string          `json:"camelCase"`
}

type inner struct {
	Key  string   `json:"key"`
	Keys []string `json:"keys"`
}

// read decodes what encoding/json decodes into a sample, with a Reader.
func (v *sample) read(r *Reader) error {
	return r.Object(func(name []byte) error {
		switch string(name) {
		case "s":
			return r.String(&v.S)
		case "b":
			return r.Bool(&v.B)
		case "list":
			return r.Strings(&v.List)
		case "raw":
			raw, err := r.Raw()
			v.Raw = append(v.Raw[:0], raw...)
			return err
		case "time":
			raw, err := r.Raw()
			if err != nil {
				return err
			}
			return v.Time.UnmarshalJSON([]byte(raw))
		case "obj":
			return v.Obj.read(r)
		case "ptr":
			if r.Null() {
				v.Ptr = nil
				return nil
			}
			if v.Ptr == nil {
				v.Ptr = new(inner)
			}
			return v.Ptr.read(r)
		case "camelcase":
			return r.String(&v.Camel)
		}
		return nil
	})
}

func (v *inner) read(r *Reader) error {
	return r.Object(func(name []byte) error {
		switch string(name) {
		case "key":
			return r.String(&v.Key)
		case "keys":
			return r.Strings(&v.Keys)
		}
		return nil
	})
}

// compare decodes data as json.Unmarshal does (the whole input one
// value) and as a json.Decoder does (the first value, the rest
// ignored), with encoding/json and with a Reader, and fails on any
// difference: one refusing what the other accepts, or another result.
func compare(t *testing.T, data []byte) {
	t.Helper()
	shown := data[:min(len(data), 300)]
	for _, whole := range []bool{true, false} {
		var want, got sample
		var werr error
		if whole {
			werr = json.Unmarshal(data, &want)
		} else {
			werr = json.NewDecoder(bytes.NewReader(data)).Decode(&want)
		}
		r := NewReader(string(data))
		gerr := got.read(r)
		if gerr == nil && whole {
			gerr = r.End()
		}
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("whole input %v: encoding/json says %v, the Reader %v, for %q", whole, werr, gerr, shown)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("whole input %v: for %q\nencoding/json gives %#v\nthe Reader gives     %#v", whole, shown, want, got)
		}
	}
}

// seeds are inputs for the corners: every escape, surrogates whole and
// broken, invalid UTF-8, names in other cases and folds, repeated names
// (the slice elements kept), nulls, numbers, nesting, trailing text.
var seeds = []string{
	`{"s":"plain","b":true,"list":["a","b"],"raw":{"x":[1,2.5e3,-0,"y"]},"time":"2026-11-29T12:00:00.5+01:00","obj":{"key":"k","keys":[]},"ptr":{"key":"p"},"camelCase":"c"}`,
	`{"s":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00"}`,
	`{"s":"\ud800","list":["\udc00x","\ud800\u0041","\ud800\ud800\udc00","\ud83d\ude00"]}`,
	"{\"s\":\"\xff\xfe\xed\xa0\x80\xc0\xaf ok \xe2\x82\"}",
	`{"S":"upper","ſ":"long s","B":true,"CAMELCASE":"x","Obj":{"\u212aey":"kelvin"},"camelcase":"y"}`,
	`{"list":["a","b","c"],"list":["x"],"list":[null,null,null,null]}`,
	`{"list":["a","b"],"list":[],"list":[null]}`,
	`{"list":null,"s":null,"b":null,"obj":null,"ptr":null,"time":null,"raw":null}`,
	`{"ptr":{"key":"a","keys":["q"]},"ptr":{"key":"b"},"obj":{"keys":["z"]},"obj":{"key":"w"}}`,
	`{"ptr":{"key":"a"},"ptr":null,"ptr":{}}`,
	`{"other":[{"a":[[[]]]},-1.5E-3,0,1e9,true,false,null,"x"],"s":"after"}`,
	` {"s":"x"} trailing`,
	`null`,
	`null garbage`,
	`{"s":"x"}{"s":"y"}`,
	`{"s":1}`, `{"b":"true"}`, `{"list":"a"}`, `{"list":[1]}`, `{"obj":[]}`, `{"time":"2026-13-01T00:00:00Z"}`, `{"time":1}`,
	`{"time":"\u0032026-01-01T00:00:00Z"}`,
	`{"s":"x",}`, `{"s" "x"}`, `{"s":01}`, `{"s":"a\x"}`, `{"s":"\u12"}`, "{\"s\":\"\x01\"}", `[1,]`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":tru}`, `{"a":nul}`,
	`"string"`, `42`, `true`, `[]`, ``, ` `, "\ufeff{}",
}

// TestReaderMatchesEncodingJSON runs the seeds, and inputs at
// encoding/json's nesting limit (too large to be worth fuzzing).
func TestReaderMatchesEncodingJSON(t *testing.T) {
	for _, s := range seeds {
		compare(t, []byte(s))
	}
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		compare(t, []byte(strings.Repeat(`{"a":`, depth)+`1`+strings.Repeat(`}`, depth)))
		compare(t, []byte(strings.Repeat(`[`, depth)+strings.Repeat(`]`, depth)))
		compare(t, []byte(`{"a":`+strings.Repeat(`[`, depth-1)+strings.Repeat(`]`, depth-1)+`}`))
		compare(t, []byte(`{"list":`+strings.Repeat(`[`, depth-1)+strings.Repeat(`]`, depth-1)+`}`))
	}
}

// FuzzReaderMatchesEncodingJSON is the differential test: whatever the
// input, the Reader must accept what encoding/json accepts, refuse what
// it refuses, and decode the same values.
func FuzzReaderMatchesEncodingJSON(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(compare)
}

// TestFold checks the folded names against the field names written in
// lower case; the differential tests check that folding matches
// encoding/json.
func TestFold(t *testing.T) {
	for name, want := range map[string]string{
		"apiVersion": "apiversion", "ſcopes": "scopes", "\u212aey": "key", "ÉTÉ": "ÉtÉ", "été": "ÉtÉ", "\xff": "\ufffd",
	} {
		if got := string(fold(nil, name)); got != want {
			t.Errorf("fold(%q) = %q, want %q", name, got, want)
		}
	}
}

// encodingJSON is a string as encoding/json writes it, with or without
// HTML escaping.
func encodingJSON(t *testing.T, s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func compareString(t *testing.T, s string) {
	for _, html := range []bool{true, false} {
		if got, want := string(AppendString(nil, s, html)), encodingJSON(t, s, html); got != want {
			t.Fatalf("AppendString(%q, escapeHTML=%v) = %s, encoding/json writes %s", s, html, got, want)
		}
	}
}

var stringSeeds = []string{
	"", "plain", "\"\\/\b\f\n\r\t\x00\x01\x1f\x7f", "<a href='x'>&amp;</a>", "é€😀", "\u2028\u2029\u2027\u202a",
	"\xff\xfe\xed\xa0\x80\xc0\xaf\xe2\x82", "mixed \xe2\x82 é \x00 <>", "\ufffd", "\U0010ffff",
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range stringSeeds {
		compareString(t, s)
	}
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	compareString(t, string(all))
	ss := []string{"a", "<b>", ""}
	for _, html := range []bool{true, false} {
		for _, v := range [][]string{nil, {}, ss} {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(html)
			enc.Encode(v)
			if got, want := string(AppendStrings(nil, v, html)), strings.TrimSuffix(b.String(), "\n"); got != want {
				t.Errorf("AppendStrings(%#v, %v) = %s, encoding/json writes %s", v, html, got, want)
			}
		}
	}
}

// FuzzAppendStringMatchesEncodingJSON is the differential test of the
// string encoder.
func FuzzAppendStringMatchesEncodingJSON(f *testing.F) {
	for _, s := range stringSeeds {
		f.Add(s)
	}
	f.Fuzz(compareString)
}
