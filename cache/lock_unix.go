//go:build unix

package cache

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// heldLock is a lock file (and the directory, shared) locked with flock,
// or the directory alone, exclusively.
type heldLock struct {
	file, dir *os.File // file is nil when the directory is the lock
	path      string
}

func (h heldLock) release(remove bool) {
	if remove && h.file != nil {
		os.Remove(h.path)
	}
	if h.file != nil {
		h.file.Close() // closing the descriptor releases its flock
	}
	h.dir.Close()
}

// tryLock makes one attempt at the lock; busy means another process holds
// it (or the file was replaced meanwhile): try again later.
func tryLock(dirPath, path string) (held heldLock, busy bool, err error) {
	dir, err := os.Open(dirPath)
	if err != nil {
		return held, false, fmt.Errorf("cannot open the cache directory %s to lock a session: %s", dirPath, describe(err))
	}
	const flags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|flags, 0o600)
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		// flock needs no write access: an existing lock file works in a
		// read-only directory.
		file, err = os.OpenFile(path, os.O_RDONLY|flags, 0)
		if errors.Is(err, syscall.ENOENT) {
			return lockDir(dir)
		}
	}
	if err != nil {
		dir.Close()
		if errors.Is(err, syscall.ELOOP) {
			return held, false, fmt.Errorf("the lock file %s is a symbolic link; delete it", path)
		}
		return held, false, fmt.Errorf("cannot open the lock file %s: %s", path, describe(err))
	}
	fail := func(err error) (heldLock, bool, error) {
		file.Close()
		dir.Close()
		return heldLock{}, false, err
	}
	st, err := file.Stat()
	if err != nil {
		return fail(fmt.Errorf("cannot inspect the lock file %s: %s", path, describe(err)))
	}
	if !st.Mode().IsRegular() {
		return fail(fmt.Errorf("the lock file %s is not a regular file (a FIFO, a device or a directory); delete it", path))
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fail(fmt.Errorf("the lock file %s is owned by user %d, not by you; delete it", path, sys.Uid))
	}
	for _, l := range []struct {
		f   *os.File
		how int
	}{{dir, syscall.LOCK_SH}, {file, syscall.LOCK_EX}} {
		if ok, err := flock(l.f, l.how); err != nil || !ok {
			file.Close()
			dir.Close()
			return heldLock{}, err == nil, err
		}
	}
	// Logout deletes lock files: the one locked here must still be the
	// one at the path, or a process that opens the path anew would not
	// be excluded.
	if now, err := os.Lstat(path); err != nil || !os.SameFile(st, now) {
		file.Close()
		dir.Close()
		return held, true, nil
	}
	return heldLock{file: file, dir: dir, path: path}, false, nil
}

// lockDir takes the directory exclusively, for a read-only directory
// without a lock file.
func lockDir(dir *os.File) (heldLock, bool, error) {
	ok, err := flock(dir, syscall.LOCK_EX)
	if err != nil || !ok {
		dir.Close()
		return heldLock{}, err == nil, err
	}
	return heldLock{dir: dir}, false, nil
}

// flock tries to lock f without blocking; ok is false when another
// process holds a conflicting lock.
func flock(f *os.File, how int) (ok bool, err error) {
	err = ignoringEINTR(func() error { return syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB) })
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return false, nil
	}
	return false, fmt.Errorf("cannot lock %s: %s", f.Name(), describe(err))
}
