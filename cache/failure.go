package cache

import (
	"encoding/json"
	"path/filepath"
	"time"
)

// Failure remembers that signing in (or refreshing) a session failed, so
// that kubectl's automatic re-runs and background callers fail fast with the
// same message instead of starting new device logins.
type Failure struct {
	// Time is when the attempt ended.
	Time time.Time `json:"time"`
	// Parent is the process ID of the plugin's parent (kubectl) at the time:
	// re-runs by the same kubectl are not a person trying again.
	Parent int `json:"parent"`
	// Message is the error the person saw.
	Message string `json:"message"`
}

func (s Store) failurePath(id string) string {
	return filepath.Join(s.Dir, id+kindFailure)
}

// RecordFailure remembers f for the session with this ID.
func (s Store) RecordFailure(id string, f Failure) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return s.writeFile(id, s.failurePath(id), data)
}

// LastFailure returns the remembered failure, or nil when there is none or
// it cannot be read.
func (s Store) LastFailure(id string) *Failure {
	data, err := readPrivate(s.failurePath(id), 64<<10)
	if err != nil {
		return nil
	}
	var v Failure
	if json.Unmarshal(data, &v) != nil || v.Time.IsZero() {
		return nil
	}
	return &v
}

// ClearFailure forgets the remembered failure.
func (s Store) ClearFailure(id string) error {
	return removeFile(s.failurePath(id))
}
