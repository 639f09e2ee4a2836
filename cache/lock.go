package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// lockPoll is how often a waiting process retries the lock.
const lockPoll = 25 * time.Millisecond

// Lock takes the exclusive lock of the entry with this ID, waiting until
// ctx is done. onWait, if not nil, is called once when the lock is held by
// another process, before waiting. The operating system releases the lock
// when its holder exits, so a killed process never leaves it held.
// The returned function releases the lock.
//
// When the cache directory cannot be written (read-only, full, or owned by
// someone else), the lock lives in a private directory under the system's
// temporary directory instead, so that processes still take turns even
// though none of them can save.
func (s Store) Lock(ctx context.Context, id string, onWait func()) (unlock func(), err error) {
	fl, err := s.lockFile(id)
	if err != nil {
		return nil, err
	}
	path := fl.Path()
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("cannot lock %s: %s", path, describe(err))
	}
	if !ok {
		if onWait != nil {
			onWait()
		}
		ok, err = fl.TryLockContext(ctx, lockPoll)
		if err != nil && !errors.Is(err, ctx.Err()) {
			return nil, fmt.Errorf("cannot lock %s: %s", path, describe(err))
		}
		if !ok {
			fl.Close()
			return nil, ctx.Err()
		}
	}
	return func() { fl.Unlock() }, nil
}

// lockFile opens the lock file of a session, falling back to the
// temporary directory when the cache directory cannot hold it.
func (s Store) lockFile(id string) (*flock.Flock, error) {
	dirErr := s.ensureDir()
	if dirErr == nil {
		fl := flock.New(filepath.Join(s.Dir, id+".lock"))
		if _, err := fl.TryRLock(); err == nil {
			fl.Unlock()
			return fl, nil
		} else {
			dirErr = fmt.Errorf("cannot create a lock file in %s: %s", s.Dir, describe(err))
		}
	}
	fallback := Store{Dir: filepath.Join(os.TempDir(), fmt.Sprintf("kubectl-device-login-%d", os.Getuid()))}
	if err := fallback.ensureDir(); err != nil {
		return nil, fmt.Errorf("%v, nor in %s: %v", dirErr, fallback.Dir, err)
	}
	return flock.New(filepath.Join(fallback.Dir, id+".lock")), nil
}
