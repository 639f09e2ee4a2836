//go:build !unix

package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// On Windows a file under the user's profile is protected by the profile's
// access control list; mode bits say nothing useful there.
func unsafeFile(fs.FileInfo) string { return "" }

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
	return nil
}

func syncDir(string) {}

func isUnsupported(err error) bool { return errors.Is(err, errors.ErrUnsupported) }
