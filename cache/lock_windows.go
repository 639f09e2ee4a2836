//go:build windows

package cache

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// heldLock is a lock file locked with LockFileEx.
type heldLock struct {
	file *os.File
}

// release unlocks and closes the file. On Windows the file is not
// removed: a file deleted while others have it open lingers until they
// close it, and opening its name meanwhile fails.
func (h heldLock) release(bool) {
	windows.UnlockFileEx(windows.Handle(h.file.Fd()), 0, 1, 0, new(windows.Overlapped))
	h.file.Close()
}

// tryLock makes one attempt at the lock; busy means another process holds
// it: try again later.
func tryLock(_, path string) (heldLock, bool, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return heldLock{}, false, fmt.Errorf("cannot open the lock file %s: %v", path, err)
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_ALWAYS, windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT, 0)
	if err != nil {
		return heldLock{}, false, fmt.Errorf("cannot open the lock file %s: %v; fix the cache directory or choose another with --cache-dir", path, err)
	}
	file := os.NewFile(uintptr(h), path)
	if st, err := file.Stat(); err != nil || !st.Mode().IsRegular() {
		file.Close()
		return heldLock{}, false, fmt.Errorf("the lock file %s is not a regular file; delete it", path)
	}
	err = windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, new(windows.Overlapped))
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		file.Close()
		return heldLock{}, true, nil
	}
	if err != nil {
		file.Close()
		return heldLock{}, false, fmt.Errorf("cannot lock %s: %v", path, err)
	}
	return heldLock{file: file}, false, nil
}
