package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Store is a directory of session files, DIR/ID.json. Next to each
// session are ID.lock (its lock), ID.failed (a remembered failure) and,
// for a session kept in the keyring, ID.keyring (a token-free index
// record). Every file is written through a temporary file .tmp-ID-…
// that is renamed into place.
type Store struct {
	// Dir holds the files; it is created with mode 0700 on first save.
	Dir string
}

// Path is the file that holds the entry with this ID.
func (s Store) Path(id string) string {
	return filepath.Join(s.Dir, id+kindSession)
}

func (s Store) tempPrefix(id string) string { return kindTemp + id + "-" }

// Load reads the entry for k. It returns ErrNotFound when there is none,
// a *BadFileError when the file is unsafe, corrupt, or belongs to another
// key or format, and another error when the directory itself is unsafe.
func (s Store) Load(k Key) (*Entry, error) {
	if err := s.checkExisting(); err != nil {
		return nil, err
	}
	k = k.Normalize()
	path := s.Path(k.ID())
	e, err := s.LoadFile(path)
	// The key stored in the file must be the one its name was derived
	// from; comparing the normalized keys says so without hashing again.
	if err == nil && !sameKey(e.Key.Normalize(), k) {
		return nil, &BadFileError{path, reasonOtherLogin}
	}
	return e, err
}

// LoadFile reads a session from a path without knowing its key, with
// the same checks as Load except the key match.
func (s Store) LoadFile(path string) (*Entry, error) {
	data, err := readPrivate(path, maxFileSize)
	if err != nil {
		return nil, err
	}
	e, reason := Decode(data)
	if reason != "" {
		return nil, &BadFileError{path, reason}
	}
	return e, nil
}

// minReservation is the least room a reservation takes: more than any
// session of ordinary tokens needs.
const minReservation = 16 << 10

// reservation is room taken in the cache directory for a session before
// its refresh token is spent: a synced temporary file as large as the
// new session will be, which Commit overwrites and renames into place.
// When the directory is read-only or full, Reserve fails instead, while
// the refresh token is still unspent.
type reservation struct {
	t *tempFile
}

// Reserve takes room for the session with this ID, at least twice size
// bytes.
func (s Store) reserve(id string, size int) (*reservation, error) {
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	t, err := createTemp(s.Dir, s.tempPrefix(id), s.Path(id))
	if err != nil {
		return nil, err
	}
	if err := t.reserve(max(2*size, minReservation)); err != nil {
		t.abort()
		return nil, err
	}
	return &reservation{t: t}, nil
}

// Commit writes e into the reserved room and renames it into place.
func (r *reservation) Commit(e *Entry) error {
	data, err := e.encode()
	if err != nil {
		r.t.abort()
		return err
	}
	return r.t.commit(data)
}

// Cancel gives the room back.
func (r *reservation) Cancel() { r.t.abort() }

// Save writes e atomically: readers see the old entry or the new one,
// never a part. The file's mode is 0600 and the directory's 0700.
func (s Store) Save(e *Entry) error {
	r, err := s.reserve(e.Key.ID(), 0)
	if err != nil {
		return err
	}
	return r.Commit(e)
}

// writeFile replaces path, a file of the session with this ID, with data.
func (s Store) writeFile(id, path string, data []byte) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	t, err := createTemp(s.Dir, s.tempPrefix(id), path)
	if err != nil {
		return err
	}
	return t.commit(data)
}

// remove removes the entry with this ID. A missing entry is not an error.
func (s Store) remove(id string) error {
	return removeFile(s.Path(id))
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot delete %s: %s", path, describe(err))
	}
	return nil
}

// temps lists the temporary files of the session with this ID.
func (s Store) temps(id string) []string {
	found, _ := filepath.Glob(filepath.Join(s.Dir, s.tempPrefix(id)+"*"))
	return found
}

// recover deals with what a killed writer left of the session with this
// ID. A temporary file that holds a whole session newer than the session
// file is renamed into place: the writer was killed after spending the
// old refresh token and before the rename, so the temporary file holds
// the only live one. Every other temporary file of this ID (a reservation
// never filled, a failure note or index record never renamed, a torn
// write) is removed. The caller holds the session's lock: only the lock
// holder writes, so no temporary file belongs to a live writer.
func (s Store) recover(id string) (recovered bool, err error) {
	temps := s.temps(id)
	if len(temps) == 0 {
		return false, nil
	}
	cur, _ := s.LoadFile(s.Path(id))
	best := ""
	var errs []error
	for _, p := range temps {
		e, lerr := s.LoadFile(p)
		if lerr == nil && e.Key.ID() == id && e.newer(cur) {
			if best != "" {
				errs = append(errs, removeFile(best))
			}
			best, cur = p, e
			continue
		}
		errs = append(errs, removeFile(p))
	}
	if best != "" {
		if err := os.Rename(best, s.Path(id)); err != nil {
			errs = append(errs, fmt.Errorf("cannot put %s in place: %s", best, describe(err)))
		} else {
			syncDir(s.Dir)
			recovered = true
		}
	}
	return recovered, errors.Join(errs...)
}

// ensureDir creates the directory with mode 0700 (on Windows: for this
// user only), or checks an existing one: a real directory, owned by this
// user, and not open to anyone else.
//
// The usual case, a directory that is there, is told from one Lstat.
// Anything else (nothing there, a link, a file, an Lstat that fails)
// takes makePrivateDir and then checkDir, as it always has, so that what
// is said about it stays the same.
func (s Store) ensureDir() error {
	if s.Dir == "" {
		return errors.New("no cache directory is set")
	}
	if st, err := os.Lstat(s.Dir); err == nil && st.IsDir() {
		return checkDirInfo(s.Dir, st)
	}
	if err := makePrivateDir(s.Dir); err != nil {
		return fmt.Errorf("cannot create the cache directory %s (%s); choose another with --cache-dir", s.Dir, describe(err))
	}
	return checkDir(s.Dir)
}

// checkExisting reports whether an existing cache directory is safe to read
// sessions from. A missing directory is fine. The directory is looked at
// once: this is on the path of every cache hit.
func (s Store) checkExisting() error {
	st, err := os.Lstat(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return checkDirLstat(s.Dir, st, err)
}

// checkDir checks that dir is safe for sessions (see checkDirInfo).
func checkDir(dir string) error {
	st, err := os.Lstat(dir)
	return checkDirLstat(dir, st, err)
}

// checkDirLstat checks dir from what os.Lstat returned for it, so that a
// caller that has already looked at the directory need not look again.
func checkDirLstat(dir string, st fs.FileInfo, err error) error {
	if err != nil {
		return fmt.Errorf("cannot inspect the cache directory %s: %s", dir, describe(err))
	}
	return checkDirInfo(dir, st)
}

// Kinds of file in a cache directory, as listed by files. Each is the
// mark in the file's name: its end (ID.json, ID.lock, ID.failed,
// ID.keyring) or, for a temporary file, its start (.tmp-ID-…).
const (
	kindSession = ".json"
	kindLock    = ".lock"
	kindFailure = ".failed"
	kindRecord  = recordExt
	kindTemp    = ".tmp-"
)

// dirFile is one file of a cache directory.
type dirFile struct {
	id, kind, path string
}

// files lists the files of the directory that belong to sessions, with
// the ID each belongs to. A missing directory is an empty list.
func (s Store) files() ([]dirFile, error) {
	des, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list %s: %s", s.Dir, describe(err))
	}
	var out []dirFile
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(s.Dir, name)
		if rest, ok := strings.CutPrefix(name, kindTemp); ok {
			if id, _, ok := strings.Cut(rest, "-"); ok && id != "" {
				out = append(out, dirFile{id, kindTemp, path})
			}
			continue
		}
		if strings.HasPrefix(name, ".") {
			continue
		}
		for _, kind := range []string{kindSession, kindLock, kindFailure, kindRecord} {
			if id, ok := strings.CutSuffix(name, kind); ok && id != "" {
				out = append(out, dirFile{id, kind, path})
			}
		}
	}
	return out, nil
}
