package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Format is the value of the "format" field of every cache file this
// version writes. A file with another format is a miss, never an error.
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
	// AccessToken and its type and expiry.
	AccessToken string    `json:"access_token,omitempty"`
	TokenType   string    `json:"token_type,omitempty"`
	Expiry      time.Time `json:"expiry,omitzero"`
	// RefreshToken, when the provider issued one.
	RefreshToken string `json:"refresh_token,omitempty"`
	// IDToken and the expiry read from its exp claim.
	IDToken       string    `json:"id_token,omitempty"`
	IDTokenExpiry time.Time `json:"id_token_expiry,omitzero"`
	// IssuedAt is when this machine received the tokens.
	IssuedAt time.Time `json:"issued_at"`
}

type file struct {
	Format string `json:"format"`
	Entry
}

// ErrNotFound is returned by Load when there is no entry for a key.
var ErrNotFound = errors.New("no cached session")

// BadFileError reports a cache file that exists but cannot be used. Callers
// treat it as a miss and show it as a note; it never holds file contents.
type BadFileError struct {
	Path   string
	Reason string
}

func (e *BadFileError) Error() string {
	return fmt.Sprintf("ignoring cache file %s: %s", e.Path, e.Reason)
}

// Store is a directory of cache files.
type Store struct {
	// Dir holds the files; it is created with mode 0700 on first save.
	Dir string
}

// Path is the file that holds the entry with this ID.
func (s Store) Path(id string) string {
	return filepath.Join(s.Dir, id+".json")
}

// Load reads the entry for k. It returns ErrNotFound when there is none and
// a *BadFileError when the file is unsafe, corrupt, or belongs to another
// key or format.
func (s Store) Load(k Key) (*Entry, error) {
	k = k.Normalize()
	return s.load(s.Path(k.ID()), &k)
}

// LoadFile reads an entry from a path without knowing its key, as status
// listings do. The same checks as Load apply, except the key match.
func (s Store) LoadFile(path string) (*Entry, error) {
	return s.load(path, nil)
}

func (s Store) load(path string, want *Key) (*Entry, error) {
	data, err := readPrivate(path, maxFileSize)
	if err != nil {
		return nil, err
	}
	e, reason := Decode(data)
	// The key stored in the file must be the one its name was derived
	// from; comparing the normalized keys says so without hashing again.
	if reason == "" && want != nil && !sameKey(e.Key.Normalize(), *want) {
		reason = "it belongs to another login (its key does not match its name)"
	}
	if reason != "" {
		return nil, &BadFileError{path, reason}
	}
	return e, nil
}

// readPrivate reads a regular file of at most limit bytes (one byte more
// is returned when it is larger) that only this user can read or change.
// A missing file is ErrNotFound; any other problem a *BadFileError.
func readPrivate(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, &BadFileError{path, "cannot open it: " + describe(err)}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &BadFileError{path, "cannot inspect it: " + describe(err)}
	}
	if !st.Mode().IsRegular() {
		return nil, &BadFileError{path, "it is not a regular file"}
	}
	if reason := unsafeFile(st); reason != "" {
		return nil, &BadFileError{path, reason}
	}
	// Sized from the file: one read instead of io.ReadAll's growing ones.
	buf := bytes.NewBuffer(make([]byte, 0, min(st.Size(), limit)+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, &BadFileError{path, "cannot read it: " + describe(err)}
	}
	return buf.Bytes(), nil
}

// sameKey reports whether two normalized keys are equal.
func sameKey(a, b Key) bool {
	return a.Issuer == b.Issuer && a.ClientID == b.ClientID && a.Token == b.Token &&
		slices.Equal(a.Scopes, b.Scopes) && slices.Equal(a.ExtraParams, b.ExtraParams)
}

// Decode parses the contents of a cache file. When the data is not a
// session of this format, it returns a reason, worded to follow "it".
func Decode(data []byte) (e *Entry, reason string) {
	if len(data) > maxFileSize {
		return nil, "it is larger than 1 MiB, so it is not one of ours"
	}
	var v file
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&v); err != nil {
		return nil, "it is not valid JSON (a damaged or foreign file); it will be replaced at the next sign-in"
	}
	if v.Format != Format {
		return nil, fmt.Sprintf("it has format %q, not %q (written by another program or version)", truncate(v.Format, 60), Format)
	}
	return &v.Entry, ""
}

// Save writes e atomically: a temporary file in the same directory, synced,
// then renamed over the old entry, so readers see the old or the new entry
// and never a partial one. The file's mode is 0600 and the directory's 0700.
func (s Store) Save(e *Entry) error {
	data, err := json.MarshalIndent(file{Format: Format, Entry: *e}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the session: %w", err)
	}
	id := e.Key.ID()
	return s.writeAtomic(id, s.Path(id), append(data, '\n'))
}

// writeAtomic replaces path with data through a synced temporary file.
func (s Store) writeAtomic(id, path string, data []byte) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	s.removeStaleTemps(id)
	tmp, err := os.CreateTemp(s.Dir, ".tmp-"+id+"-*")
	if err != nil {
		return fmt.Errorf("cannot write to %s: %s", s.Dir, describe(err))
	}
	name := tmp.Name()
	fail := func(what string, err error) error {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("cannot %s %s: %s", what, name, describe(err))
	}
	if err := tmp.Chmod(0o600); err != nil && !isUnsupported(err) {
		return fail("set permissions on", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail("write", err)
	}
	if err := tmp.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("cannot close %s: %s", name, describe(err))
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("cannot replace %s: %s", path, describe(err))
	}
	syncDir(s.Dir)
	return nil
}

// Delete removes the entry with this ID. A missing entry is not an error.
func (s Store) Delete(id string) error {
	err := os.Remove(s.Path(id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot delete %s: %s", s.Path(id), describe(err))
	}
	return nil
}

// Listed is one session found by List (Store's or Keyring's).
type Listed struct {
	// Path is the session file, or the index record of a keyring session.
	Path string
	// ID is the file name without its extension: the key's ID when the
	// file is usable.
	ID    string
	Entry *Entry // nil when Err is set
	Err   error
	// Record is set for a session kept in the keyring, even when the
	// keyring could not be read.
	Record *KeyringRecord
}

// List reads every entry in the directory, including unusable ones (with
// Err set). A missing directory is an empty list.
func (s Store) List() ([]Listed, error) {
	des, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list %s: %s", s.Dir, describe(err))
	}
	var out []Listed
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		p := filepath.Join(s.Dir, name)
		e, err := s.LoadFile(p)
		if err == nil && e.Key.ID()+".json" != name {
			e, err = nil, &BadFileError{p, "it belongs to another login (its key does not match its name)"}
		}
		out = append(out, Listed{Path: p, ID: strings.TrimSuffix(name, ".json"), Entry: e, Err: err})
	}
	return out, nil
}

// ensureDir creates the directory with mode 0700, or checks an existing
// one: a real directory (not a symlink), owned by this user, and not
// writable by anyone else. Readable bits for others are removed.
func (s Store) ensureDir() error {
	if s.Dir == "" {
		return errors.New("no cache directory is set")
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the cache directory %s: %s", s.Dir, describe(err))
	}
	return checkDir(s.Dir)
}

// CheckDir reports whether an existing cache directory is safe to read
// sessions from. A missing directory is fine.
func (s Store) CheckDir() error {
	if _, err := os.Lstat(s.Dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return checkDir(s.Dir)
}

func (s Store) removeStaleTemps(id string) {
	// Only the lock holder writes, so temporary files of this key left
	// behind are from a writer that was killed.
	old, _ := filepath.Glob(filepath.Join(s.Dir, ".tmp-"+id+"-*"))
	for _, p := range old {
		if st, err := os.Lstat(p); err == nil && time.Since(st.ModTime()) > 10*time.Second {
			os.Remove(p)
		}
	}
}

// describe turns an OS error into a short reason without repeating the path.
func describe(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		err = le.Err
	}
	return err.Error()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
