package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// readPrivate reads a regular file of at most limit bytes (one byte more
// is returned when it is larger) that only this user can read or change.
// A missing file is ErrNotFound; anything else that is wrong, a
// *BadFileError: a FIFO, a device or a directory is refused at once,
// without being opened for reading in a way that could block.
func readPrivate(path string, limit int64) ([]byte, error) {
	data, err := readRegular(path, limit, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return data, err
}

// ReadRegularFile reads a regular file of at most limit bytes, refusing a
// FIFO, a device or a directory at once instead of blocking on it. It is
// for files a person names (certificate authorities, a client secret
// file), so it follows symbolic links, as secret volumes and certificate
// stores use them; errors name the path and say what is wrong.
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	data, err := readRegular(path, limit, false)
	var bad *BadFileError
	switch {
	case errors.As(err, &bad):
		return nil, fmt.Errorf("%s: %s", path, bad.Reason)
	case err != nil:
		return nil, fmt.Errorf("%s: %s", path, describe(err))
	case int64(len(data)) > limit:
		return nil, fmt.Errorf("%s: it is larger than %d KiB", path, limit>>10)
	}
	return data, nil
}

// tempFile is a file being written in the directory of its final path,
// under a name that starts with a known prefix, so that one left behind
// by a killed writer can be found.
type tempFile struct {
	f          *os.File
	name, path string
}

// createTemp creates a temporary file for path in dir, readable and
// writable by this user only.
func createTemp(dir, prefix, path string) (*tempFile, error) {
	f, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("cannot write to %s: %s", dir, describe(err))
	}
	t := &tempFile{f: f, name: f.Name(), path: path}
	if err := restrict(f); err != nil {
		t.abort()
		return nil, fmt.Errorf("cannot make %s private: %s", t.name, describe(err))
	}
	return t, nil
}

// reservationMark starts the placeholder of a reserved file, so that one
// left by a killed process is recognised as holding no session.
const reservationMark = `{"format":"kubectl-device-login/reserved"}`

// reserve fills the file with a placeholder of n bytes and syncs it, so
// that the blocks a later commit overwrites are already taken: a full
// disk shows itself before anything irreversible happens.
func (t *tempFile) reserve(n int) error {
	buf := []byte(reservationMark + strings.Repeat(" ", max(0, n-len(reservationMark))))
	if _, err := t.f.Write(buf); err != nil {
		return fmt.Errorf("cannot write %s: %s", t.name, describe(err))
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("cannot sync %s: %s", t.name, describe(err))
	}
	return nil
}

// commit writes data over the start of the file, cuts it to size, syncs
// it and renames it over the final path. On failure the temporary file is
// removed and the final path is untouched.
func (t *tempFile) commit(data []byte) error {
	fail := func(what string, err error) error {
		t.abort()
		return fmt.Errorf("cannot %s %s: %s", what, t.name, describe(err))
	}
	if _, err := t.f.WriteAt(data, 0); err != nil {
		return fail("write", err)
	}
	if err := t.f.Truncate(int64(len(data))); err != nil {
		return fail("write", err)
	}
	if err := t.f.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := t.f.Close(); err != nil {
		os.Remove(t.name)
		return fmt.Errorf("cannot close %s: %s", t.name, describe(err))
	}
	if err := os.Rename(t.name, t.path); err != nil {
		os.Remove(t.name)
		return fmt.Errorf("cannot replace %s: %s", t.path, describe(err))
	}
	syncDir(filepath.Dir(t.path))
	return nil
}

// abort closes and removes the temporary file.
func (t *tempFile) abort() {
	t.f.Close()
	os.Remove(t.name)
}

// WriteFileAtomic replaces path with data through a temporary file in the
// same directory that is synced and then renamed over it, so that readers
// see the old contents or the new, never a part. The file gets mode perm
// (on Windows: access for this user only when perm is 0600). A symbolic
// link at path is replaced, not followed: resolve it first to edit its
// target.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	t, err := createTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-", path)
	if err != nil {
		return err
	}
	if perm != 0o600 {
		if err := t.f.Chmod(perm); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			t.abort()
			return fmt.Errorf("cannot set the mode of %s: %s", t.name, describe(err))
		}
	}
	return t.commit(data)
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
