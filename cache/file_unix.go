//go:build unix

package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// readRegular reads path with plain system calls: opened without
// blocking (a FIFO would otherwise block until a writer comes) and, when
// private, without following a symbolic link, checked to be a regular
// file (and, when private, to be this user's and not open to others),
// then read in one call sized from the file. No *os.File is made: on a
// cache hit that spares the runtime's poller set-up.
func readRegular(path string, limit int64, private bool) ([]byte, error) {
	flags := syscall.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if private {
		flags |= syscall.O_NOFOLLOW
	}
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = syscall.Open(path, flags, 0)
		return err
	})
	switch {
	case errors.Is(err, syscall.ENOENT):
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	case private && errors.Is(err, syscall.ELOOP):
		return nil, &BadFileError{path, "it is a symbolic link; delete it"}
	case err != nil:
		return nil, &BadFileError{path, "cannot open it: " + err.Error()}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, &BadFileError{path, "cannot inspect it: " + err.Error()}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, &BadFileError{path, "it is not a regular file (a FIFO, a device or a directory); delete it"}
	}
	if private {
		if reason := unsafeOwner(int(st.Uid), fs.FileMode(st.Mode&0o777)); reason != "" {
			return nil, &BadFileError{path, reason}
		}
	}
	buf := make([]byte, min(st.Size, limit)+1)
	n := 0
	for n < len(buf) {
		var m int
		err := ignoringEINTR(func() (err error) {
			m, err = syscall.Read(fd, buf[n:])
			return err
		})
		if err != nil {
			return nil, &BadFileError{path, "cannot read it: " + err.Error()}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// unsafeOwner explains why a file with this owner and mode must not be
// trusted with tokens, or returns "".
func unsafeOwner(uid int, perm fs.FileMode) string {
	if uid != os.Geteuid() {
		return fmt.Sprintf("it is owned by user %d, not by you (user %d); delete it", uid, os.Geteuid())
	}
	if perm&0o077 != 0 {
		return fmt.Sprintf("its permissions %#o let other users read or change it, so its tokens may be exposed; delete it and sign in again", perm)
	}
	return ""
}

// restrict makes a new file readable and writable by this user only.
func restrict(f *os.File) error { return f.Chmod(0o600) }

// makePrivateDir creates dir (and its parents) with mode 0700.
func makePrivateDir(dir string) error { return os.MkdirAll(dir, 0o700) }

// checkDirInfo checks that dir, of which os.Lstat said st, is safe for
// sessions: a real directory (not a symbolic link), owned by this user,
// and not writable or readable by others. One that only others can read
// is made private; one that others can write is refused, with the
// command that fixes it.
func checkDirInfo(dir string, st fs.FileInfo) error {
	if st.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("the cache directory %s is a symbolic link; point --cache-dir at a real directory", dir)
	}
	if !st.IsDir() {
		return fmt.Errorf("the cache directory %s is not a directory; move it away or choose another with --cache-dir", dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("the cache directory %s is owned by user %d, not by you; choose another with --cache-dir", dir, sys.Uid)
	}
	perm := st.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("the cache directory %s can be written by other users (mode %#o); run: chmod 700 %s", dir, perm, dir)
	}
	if perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("the cache directory %s can be read by other users (mode %#o) and cannot be made private (%s); run: chmod 700 %s", dir, perm, describe(err), dir)
		}
	}
	return nil
}

// syncDir makes a rename durable. Failure only weakens durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
