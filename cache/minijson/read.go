// Package minijson reads and writes the few JSON shapes a cache hit
// touches (a session file, KUBERNETES_EXEC_INFO and its cluster
// extension, the cache key's hashed array, the ExecCredential) without
// encoding/json. encoding/json is right, but the first time a process
// decodes or encodes a type it builds that type's codec by reflection,
// which costs more than all the rest of a cache hit's own work; a
// process that runs for two milliseconds never gets to reuse it.
//
// Every reader method gives exactly what encoding/json gives when it
// decodes the same value into the Go type the method names, and fails
// where encoding/json fails; AppendString writes what encoding/json
// writes. The differential fuzz tests here and in the packages that use
// it hold it to that.
//
// It lives under cache because cache, the lowest package that needs it
// (for session files and the cache key), must not import plugin, which
// uses it too (for KUBERNETES_EXEC_INFO and the ExecCredential).
package minijson

import (
	"fmt"
	"slices"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit: a value with more objects
// and arrays inside one another is refused.
const maxDepth = 10000

// Reader reads JSON values from a text, front to back. Each method reads
// one value (after any white space) or fails; after a failure the Reader
// is not to be used further.
type Reader struct {
	data  string
	off   int
	depth int
	// buf holds strings being unescaped or repaired.
	buf []byte
	// name holds the folded name of the member being read.
	name []byte
}

// NewReader returns a Reader of data. The strings it reads are parts of
// data wherever they need no unescaping, so a caller that has bytes
// converts them once, and the strings read share that one copy.
func NewReader(data string) *Reader {
	return &Reader{data: data}
}

// Error reports input that encoding/json would refuse: bad syntax, or a
// value of the wrong kind for where it goes. It never quotes the input.
type Error struct {
	// Offset is the byte where reading stopped.
	Offset int
	// What says what was expected or wrong.
	What string
}

func (e *Error) Error() string {
	return fmt.Sprintf("JSON: %s at byte %d", e.What, e.Offset)
}

func (r *Reader) fail(what string) error {
	return &Error{Offset: r.off, What: what}
}

// peek skips white space and returns the next byte, or 0 at the end.
func (r *Reader) peek() byte {
	for ; r.off < len(r.data); r.off++ {
		switch c := r.data[r.off]; c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// literal consumes word if it comes next.
func (r *Reader) literal(word string) bool {
	if r.peek() != word[0] || len(r.data)-r.off < len(word) || r.data[r.off:r.off+len(word)] != word {
		return false
	}
	r.off += len(word)
	return true
}

// Null reads a null if one comes next, and reports whether it did.
func (r *Reader) Null() bool {
	return r.literal("null")
}

// End fails unless only white space is left, as json.Unmarshal requires
// after the value. (A json.Decoder ignores what follows; a caller that
// mimics one does not call End.)
func (r *Reader) End() error {
	if r.peek(); r.off != len(r.data) {
		return r.fail("more after the value")
	}
	return nil
}

// Object reads an object as encoding/json decodes one into a struct,
// calling member for each member in order. The name member is given is
// the member's name decoded and folded as encoding/json folds names to
// match struct fields case-insensitively (see fold), so a switch over
// the struct's JSON field names, written in lower case, matches exactly
// the members encoding/json would store in them; it is valid only until
// member reads. member reads the value with one of r's methods, or
// leaves it to be skipped; a name repeated is read again, over the
// earlier value, as encoding/json does. A null is taken as an object
// without members: it leaves a struct as it was.
func (r *Reader) Object(member func(name []byte) error) error {
	if r.Null() {
		return nil
	}
	return r.container('{', '}', func(int) error {
		if r.peek() != '"' {
			return r.fail("expected a member name")
		}
		raw, err := r.str()
		if err != nil {
			return err
		}
		r.name = fold(r.name[:0], raw)
		if r.peek() != ':' {
			return r.fail("expected a colon")
		}
		r.off++
		r.peek()
		at := r.off
		if err := member(r.name); err != nil || r.off != at {
			return err
		}
		return r.Skip()
	})
}

// array reads an array, calling elem for each element; elem must read
// it.
func (r *Reader) array(elem func(i int) error) error {
	return r.container('[', ']', elem)
}

// container reads an object or an array: open, items separated by
// commas, close. item reads the i-th item.
func (r *Reader) container(open, close byte, item func(i int) error) error {
	if r.peek() != open {
		return r.fail("expected " + string(open))
	}
	r.depth++
	if r.depth > maxDepth {
		return r.fail("values nested too deeply")
	}
	r.off++
	if r.peek() == close {
		r.off++
		r.depth--
		return nil
	}
	for i := 0; ; i++ {
		if err := item(i); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.off++
		case close:
			r.off++
			r.depth--
			return nil
		default:
			return r.fail("expected a comma or " + string(close))
		}
	}
}

// String reads a string into *dst, as encoding/json decodes into a Go
// string: a null leaves *dst as it was.
func (r *Reader) String(dst *string) error {
	switch r.peek() {
	case '"':
		s, err := r.str()
		if err != nil {
			return err
		}
		*dst = s
		return nil
	case 'n':
		if r.Null() {
			return nil
		}
	}
	return r.fail("expected a string")
}

// Bool reads true or false into *dst; a null leaves *dst as it was.
func (r *Reader) Bool(dst *bool) error {
	switch {
	case r.literal("true"):
		*dst = true
	case r.literal("false"):
		*dst = false
	case r.Null():
	default:
		return r.fail("expected true or false")
	}
	return nil
}

// Strings reads an array of strings into *dst, as encoding/json decodes
// into a []string: a null makes it nil, an empty array an empty non-nil
// slice; the elements are decoded into *dst's own elements (a null
// element keeps what is there, as after a repeated member), growing and
// truncating the slice as encoding/json does.
func (r *Reader) Strings(dst *[]string) error {
	if r.Null() {
		*dst = nil
		return nil
	}
	s := *dst
	n := 0
	err := r.array(func(i int) error {
		if i >= cap(s) {
			s = slices.Grow(s, 1)
		}
		if i >= len(s) {
			s = s[:i+1]
		}
		n = i + 1
		return r.String(&s[i])
	})
	if err != nil {
		return err
	}
	s = s[:n]
	if n == 0 {
		s = []string{}
	}
	*dst = s
	return nil
}

// Raw reads any value and returns its text as it stands in the input,
// without the white space around it: what a json.RawMessage receives
// (and a json.Unmarshaler, such as time.Time, is given).
func (r *Reader) Raw() (string, error) {
	r.peek()
	start := r.off
	if err := r.Skip(); err != nil {
		return "", err
	}
	return r.data[start:r.off], nil
}

// Skip reads any value and forgets it, checking its syntax as
// encoding/json does.
func (r *Reader) Skip() error {
	switch c := r.peek(); {
	case c == '{':
		return r.Object(func([]byte) error { return nil })
	case c == '[':
		return r.array(func(int) error { return r.Skip() })
	case c == '"':
		_, err := r.str()
		return err
	case c == '-' || '0' <= c && c <= '9':
		return r.number()
	case r.literal("true"), r.literal("false"), r.Null():
		return nil
	}
	return r.fail("expected a value")
}

// number reads a number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *Reader) number() error {
	d, i := r.data, r.off
	digits := func() int {
		n := 0
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case digits() == 0:
		r.off = i
		return r.fail("expected a digit")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if digits() == 0 {
			r.off = i
			return r.fail("expected a digit")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if digits() == 0 {
			r.off = i
			return r.fail("expected a digit")
		}
	}
	r.off = i
	return nil
}

// str reads a string (the next byte is its opening quote) and returns
// it decoded: escapes resolved, and every byte that is not part of valid
// UTF-8 replaced by U+FFFD, as are lone UTF-16 surrogates. When there was
// nothing to change, the result is part of the input.
func (r *Reader) str() (string, error) {
	d := r.data
	start := r.off + 1
	ascii := true
	for i := start; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			if ascii || utf8.ValidString(d[start:i]) {
				r.off = i + 1
				return d[start:i], nil
			}
			return r.unquote(start)
		case c == '\\':
			return r.unquote(start)
		case c < ' ':
			r.off = i
			return "", r.fail("control character in a string")
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	r.off = len(d)
	return "", r.fail("unterminated string")
}

// unquote decodes the string whose text starts at start, the slow way.
func (r *Reader) unquote(start int) (string, error) {
	d := r.data
	b := r.buf[:0]
	for i := start; i < len(d); {
		c := d[i]
		switch {
		case c == '"':
			r.buf = b
			r.off = i + 1
			return string(b), nil
		case c < ' ':
			r.off = i
			return "", r.fail("control character in a string")
		case c < utf8.RuneSelf && c != '\\':
			b = append(b, c)
			i++
		case c >= utf8.RuneSelf:
			rr, size := utf8.DecodeRuneInString(d[i:])
			b = utf8.AppendRune(b, rr)
			i += size
		case i+1 >= len(d):
			r.off = len(d)
			return "", r.fail("unterminated string")
		default:
			// An escape.
			switch e := d[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := hex4(d[i:])
				if rr < 0 {
					r.off = i
					return "", r.fail("bad \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(rr) {
					// A pair is one character; anything else leaves a
					// lone half, which becomes U+FFFD, and what follows
					// is read on its own.
					if pair := utf16.DecodeRune(rr, hex4(d[i:])); pair != unicode.ReplacementChar {
						rr = pair
						i += 6
					} else {
						rr = unicode.ReplacementChar
					}
				}
				b = utf8.AppendRune(b, rr)
				continue
			default:
				r.off = i
				return "", r.fail("bad escape")
			}
			i += 2
		}
	}
	r.off = len(d)
	return "", r.fail("unterminated string")
}

// hex4 is the value of the \uXXXX escape at the start of b, or -1.
func hex4(b string) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var v rune
	for _, c := range []byte(b[2:6]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		v = v<<4 | rune(c)
	}
	return v
}

// fold appends name folded: two names fold alike exactly when
// encoding/json takes them for the same struct field name. That is,
// each character is replaced by the smallest of its Unicode simple case
// folding orbit ('ſ' and 's' by 'S', the Kelvin sign and 'k' by 'K'),
// and then, so that field names can be written as they are, A to Z by a
// to z (no orbit's smallest member is a lower-case ASCII letter, so this
// merges nothing).
func fold(dst []byte, name string) []byte {
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		rr, size := utf8.DecodeRuneInString(name[i:])
		for {
			next := unicode.SimpleFold(rr)
			if next <= rr {
				rr = next
				break
			}
			rr = next
		}
		if 'A' <= rr && rr <= 'Z' {
			rr += 'a' - 'A'
		}
		dst = utf8.AppendRune(dst, rr)
		i += size
	}
	return dst
}
