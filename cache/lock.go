package cache

import (
	"context"
	"errors"
	"fmt"
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
func (s Store) Lock(ctx context.Context, id string, onWait func()) (unlock func(), err error) {
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(s.Dir, id+".lock")
	fl := flock.New(path)
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
