//go:build unix

package cache

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// unsafeFile explains why a cache file must not be trusted, or returns "".
func unsafeFile(st fs.FileInfo) string {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Sprintf("it is owned by user %d, not by you (user %d); delete it", sys.Uid, os.Geteuid())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Sprintf("its permissions %#o let other users read or change it, so its tokens may be exposed; delete it and sign in again", perm)
	}
	return ""
}

func checkDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("cannot inspect the cache directory %s: %s", dir, describe(err))
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("the cache directory %s is a symbolic link; point --cache-dir at a real directory", dir)
	}
	if !st.IsDir() {
		return fmt.Errorf("the cache directory %s is not a directory", dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("the cache directory %s is owned by user %d, not by you; choose another with --cache-dir", dir, sys.Uid)
	}
	perm := st.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("the cache directory %s can be written by other users (mode %#o); run chmod 700 %s", dir, perm, dir)
	}
	if perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("cannot make the cache directory %s private: %s", dir, describe(err))
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

func isUnsupported(error) bool { return false }
