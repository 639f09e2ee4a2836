package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache/minijson"
)

// Format is the value of the "format" field of every session this version
// writes. A file with another format is a miss, never an error.
const Format = "kubectl-device-login/session/v1"

// maxFileSize bounds what Load reads; real entries are a few kilobytes.
const maxFileSize = 1 << 20

// Entry is one cached session.
type Entry struct {
	// Key is the login identity the tokens belong to.
	Key Key `json:"key"`
	// TokenEndpoint is where the refresh token is spent; remembered so that
	// a refresh needs no discovery.
	TokenEndpoint string `json:"token_endpoint"`
	// RevocationEndpoint is the provider's RFC 7009 endpoint, if it has one.
	RevocationEndpoint string `json:"revocation_endpoint,omitempty"`
	// AccessToken and its expiry. (The token type is not kept: kubectl
	// sends every token as a bearer token; files that hold one are read.)
	AccessToken string    `json:"access_token,omitempty"`
	Expiry      time.Time `json:"expiry,omitzero"`
	// RefreshToken, when the provider issued one.
	RefreshToken string `json:"refresh_token,omitempty"`
	// IDToken and the expiry read from its exp claim.
	IDToken       string    `json:"id_token,omitempty"`
	IDTokenExpiry time.Time `json:"id_token_expiry,omitzero"`
	// IssuedAt is when this machine received the tokens.
	IssuedAt time.Time `json:"issued_at"`
	// Superseded are refresh tokens of sessions this one replaced (login
	// --force) whose revocation at the provider is not confirmed yet: a
	// sign-in killed between saving the new session and revoking the old
	// one leaves them here, for logout and the next login to revoke, so
	// that no live refresh token is ever left without an owner.
	Superseded []string `json:"superseded_refresh_tokens,omitempty"`
}

type file struct {
	Format string `json:"format"`
	Entry
}

// encode is the JSON form of a session, as files and keyring items hold it.
func (e *Entry) encode() ([]byte, error) {
	data, err := json.MarshalIndent(file{Format: Format, Entry: *e}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the session: %w", err)
	}
	return append(data, '\n'), nil
}

// newer reports whether e was issued after other (a nil other is older).
func (e *Entry) newer(other *Entry) bool {
	return other == nil || e.IssuedAt.After(other.IssuedAt)
}

// ErrNotFound is returned by Load when there is no entry for a key.
var ErrNotFound = errors.New("no cached session")

// BadFileError reports a file that exists but cannot be used: not a
// regular file, unsafe, corrupt, or belonging to another key or format.
// Callers treat it as a miss and show it as a note; it never holds file
// contents.
type BadFileError struct {
	Path   string
	Reason string
}

func (e *BadFileError) Error() string {
	return fmt.Sprintf("ignoring %s: %s", e.Path, e.Reason)
}

// reasonOtherLogin is the reason given for a session file, a keyring entry
// or an index record that holds a key other than the one its name was
// derived from.
const reasonOtherLogin = "it belongs to another login (its key does not match its name)"

// Decode parses the contents of a session file. When the data is not a
// session of this format, it returns a reason, worded to follow "it".
func Decode(data []byte) (e *Entry, reason string) {
	if len(data) > maxFileSize {
		return nil, "it is larger than 1 MiB, so it is not one of ours"
	}
	var v file
	if err := v.read(minijson.NewReader(string(data))); err != nil {
		return nil, "it is not valid JSON (a damaged or foreign file); it will be replaced at the next sign-in"
	}
	if v.Format != Format {
		return nil, fmt.Sprintf("it has format %q, not %q (written by another program or version)", truncate(v.Format, 60), Format)
	}
	return &v.Entry, ""
}

// read decodes a session file into f exactly as a json.Decoder's Decode
// does (the first JSON value; whatever follows it is not read), without
// its reflection: on a cache hit this is the first and only JSON a
// process reads, and building encoding/json's decoder for these types
// would cost more than the rest of the hit. The members are the fields'
// JSON names; FuzzReadMatchesEncodingJSON holds read to encoding/json.
func (f *file) read(r *minijson.Reader) error {
	e := &f.Entry
	return r.Object(func(name []byte) error {
		switch string(name) {
		case "format":
			return r.String(&f.Format)
		case "key":
			return e.Key.read(r)
		case "token_endpoint":
			return r.String(&e.TokenEndpoint)
		case "revocation_endpoint":
			return r.String(&e.RevocationEndpoint)
		case "access_token":
			return r.String(&e.AccessToken)
		case "expiry":
			return readTime(r, &e.Expiry)
		case "refresh_token":
			return r.String(&e.RefreshToken)
		case "id_token":
			return r.String(&e.IDToken)
		case "id_token_expiry":
			return readTime(r, &e.IDTokenExpiry)
		case "issued_at":
			return readTime(r, &e.IssuedAt)
		case "superseded_refresh_tokens":
			return r.Strings(&e.Superseded)
		}
		return nil
	})
}

// read decodes a key's JSON object into k, as encoding/json does.
func (k *Key) read(r *minijson.Reader) error {
	return r.Object(func(name []byte) error {
		switch string(name) {
		case "issuer":
			return r.String(&k.Issuer)
		case "client_id":
			return r.String(&k.ClientID)
		case "scopes":
			return r.Strings(&k.Scopes)
		case "extra_params":
			return r.Strings(&k.ExtraParams)
		case "token":
			return r.String(&k.Token)
		}
		return nil
	})
}

// readTime decodes a time as encoding/json does: it hands time.Time the
// value as written (RFC 3339 in a string, or null for no change).
func readTime(r *minijson.Reader, t *time.Time) error {
	raw, err := r.Raw()
	if err != nil {
		return err
	}
	return t.UnmarshalJSON([]byte(raw))
}

// decodeFor decodes data as the session with this ID.
func decodeFor(data []byte, id string) (*Entry, string) {
	e, reason := Decode(data)
	if reason == "" && e.Key.ID() != id {
		return nil, reasonOtherLogin
	}
	return e, reason
}

// sameKey reports whether two normalized keys are equal.
func sameKey(a, b Key) bool {
	return a.Issuer == b.Issuer && a.ClientID == b.ClientID && a.Token == b.Token &&
		slices.Equal(a.Scopes, b.Scopes) && slices.Equal(a.ExtraParams, b.ExtraParams)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
