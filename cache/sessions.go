package cache

// Sessions is where session entries are kept: files in a Store (the
// default), the operating system's keyring (Keyring), or nowhere (None).
// The lock and the failure markers are not part of it: they are always
// files of a Store, because keyrings have no locks.
type Sessions interface {
	// Load returns the entry for k, or an error that is ErrNotFound when
	// there is none. Other errors describe an entry that exists but cannot
	// be used; callers treat them as a miss and show them as a note.
	Load(k Key) (*Entry, error)
	// Save stores e in place of the entry for its key. Callers hold the
	// session's lock.
	Save(e *Entry) error
	// Delete removes the entry with this ID. A missing entry is not an
	// error.
	Delete(id string) error
}

// None keeps no session at all: every Load is a miss and Save forgets, so
// that tokens live only in the memory of one run.
type None struct{}

// Load always reports ErrNotFound.
func (None) Load(Key) (*Entry, error) { return nil, ErrNotFound }

// Save keeps nothing.
func (None) Save(*Entry) error { return nil }

// Delete has nothing to delete.
func (None) Delete(string) error { return nil }

var (
	_ Sessions = Store{}
	_ Sessions = (*Keyring)(nil)
	_ Sessions = None{}
)
