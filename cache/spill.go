package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Spare is a private directory under the system's temporary directory
// that takes sessions the cache directory cannot (read-only, full). It is
// per user and per cache directory, and checked like the cache directory.
func (s Store) Spare() Store {
	sum := sha256.Sum256([]byte(s.Dir))
	return Store{Dir: filepath.Join(os.TempDir(), fmt.Sprintf("kubectl-device-login-%d-%s", os.Getuid(), hex.EncodeToString(sum[:6])))}
}

// Spilling keeps sessions in Primary and, when Primary cannot save one,
// in Spare, so that a rotated refresh token is never lost: without it the
// next process would spend the old refresh token again, which providers
// with reuse detection (Ory Hydra) punish by ending the session. Load
// returns the newer of the two copies.
type Spilling struct {
	Primary, Spare Sessions
	// OnSpill, when set, is told that a session went to Spare and why
	// Primary refused it.
	OnSpill func(err error)
}

// Load returns the newer of Primary's and Spare's entry for k.
func (s Spilling) Load(k Key) (*Entry, error) {
	e, err := s.Primary.Load(k)
	spare, serr := s.Spare.Load(k)
	if serr == nil && (e == nil || spare.IssuedAt.After(e.IssuedAt)) {
		return spare, nil
	}
	return e, err
}

// Save saves in Primary, else in Spare. After a save in Primary, the
// spare copy is removed.
func (s Spilling) Save(e *Entry) error {
	err := s.Primary.Save(e)
	if err == nil {
		s.Spare.Delete(e.Key.ID())
		return nil
	}
	if serr := s.Spare.Save(e); serr != nil {
		return errors.Join(err, serr)
	}
	if s.OnSpill != nil {
		s.OnSpill(err)
	}
	return nil
}

// Delete removes the entry from both.
func (s Spilling) Delete(id string) error {
	return errors.Join(s.Primary.Delete(id), s.Spare.Delete(id))
}

var _ Sessions = Spilling{}
