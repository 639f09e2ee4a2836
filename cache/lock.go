package cache

import (
	"context"
	"path/filepath"
	"time"
)

// lockPoll is how often a waiting process retries the lock.
const lockPoll = 25 * time.Millisecond

// Lock is a held session lock.
type Lock struct {
	held heldLock
}

// Release releases the lock.
func (l *Lock) Release() { l.held.release(false) }

// ReleaseAndRemove deletes the lock file, then releases the lock: for
// logout, which leaves no file of the session behind. A process that
// opened the file before it was deleted notices and starts over on the
// new file, so the lock still excludes. (On Windows the file stays.)
func (l *Lock) ReleaseAndRemove() { l.held.release(true) }

// Lock takes the exclusive lock of the session with this ID, waiting
// until ctx is done. onWait, if not nil, is called once when another
// process holds it, before waiting. The operating system releases the
// lock when its holder exits, so a killed process never leaves it held.
//
// The lock is the file DIR/ID.lock. When the cache directory is
// read-only and that file does not exist yet, the lock is the directory
// itself, taken exclusively (every process that locks a session file
// also holds the directory shared), so that processes still take turns
// without a file anywhere else.
func (s Store) Lock(ctx context.Context, id string, onWait func()) (*Lock, error) {
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(s.Dir, id+kindLock)
	waited := false
	for {
		held, busy, err := tryLock(s.Dir, path)
		if err != nil {
			return nil, err
		}
		if !busy {
			return &Lock{held}, nil
		}
		if !waited {
			waited = true
			if onWait != nil {
				onWait()
			}
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}
