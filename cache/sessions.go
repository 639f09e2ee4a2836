package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// Storage is where sessions are kept.
type Storage string

// The places a session can be kept.
const (
	// Disk keeps sessions in files in the cache directory.
	Disk Storage = "disk"
	// Keyring keeps them in the operating system's keyring, with a
	// token-free index record in the cache directory; when the keyring
	// cannot be used a session goes to a file instead.
	Keyring Storage = "keyring"
	// Nowhere keeps nothing: tokens live in the memory of one run.
	Nowhere Storage = "none"
)

// Sessions is the one owner of where the sessions of a cache directory
// live: session files, the keyring, or nowhere. Every command goes
// through it, so that every copy of a session (a file, a keyring entry,
// what an interrupted save left) is seen by whoever reads, replaces,
// lists or deletes it. The lock and the failure notes are always files
// in the cache directory, whatever the storage, because keyrings have no
// locks.
//
// A Sessions is for one run, not for sharing between goroutines.
type Sessions struct {
	// Dir is the cache directory.
	Dir string
	// Storage is where sessions are saved (default Disk).
	Storage Storage
	// Context, if set, ends a wait for the keyring early (Ctrl-C).
	Context context.Context
	// KeyringTimeout bounds each keyring operation (default
	// defaultKeyringTimeout).
	KeyringTimeout time.Duration
	// Warn, if set, is told about problems a person should see: a file
	// that is ignored, a session saved on disk because the keyring could
	// not take it.
	Warn func(msg string)
	// Note, if set, is told what happens, for -v.
	Note func(msg string)

	kr     *keyring
	warned bool // about a session saved on disk instead of the keyring
}

func (s *Sessions) disk() Store { return Store{Dir: s.Dir} }

func (s *Sessions) keyring() *keyring {
	if s.kr == nil {
		s.kr = &keyring{disk: s.disk(), note: s.notef, timeout: s.KeyringTimeout, ctx: s.Context}
	}
	return s.kr
}

// keyringMayHold tells whether the keyring may hold the session with
// this ID: it is the storage, or an index record says it holds one. The
// storage is checked first; only the record takes a look at the disk.
func (s *Sessions) keyringMayHold(id string) bool {
	return s.Storage == Keyring || s.keyring().hasRecord(id)
}

func (s *Sessions) warnf(format string, args ...any) {
	if s.Warn != nil {
		s.Warn(fmt.Sprintf(format, args...))
	}
}

func (s *Sessions) notef(format string, args ...any) {
	if s.Note != nil {
		s.Note(fmt.Sprintf(format, args...))
	}
}

// Load is the read of a cache hit: no lock, no recovery, one file (or
// the keyring's entry and a fallback file). It returns ErrNotFound when
// there is no session, a *BadFileError for a file that cannot be used,
// and another error when the cache directory is unsafe.
func (s *Sessions) Load(k Key) (*Entry, error) {
	switch s.Storage {
	case Nowhere:
		return nil, ErrNotFound
	case Keyring:
		ke, kerr := s.keyring().get(k.ID())
		if kerr != nil && !errors.Is(kerr, ErrNotFound) {
			// A miss for the hit path; the slow path, under the lock,
			// says what is wrong with the keyring.
			s.notef("not reading the keyring: %v", kerr)
		}
		de, derr := s.disk().Load(k)
		switch {
		case ke != nil && (de == nil || !de.newer(ke)):
			return ke, nil
		case de != nil:
			return de, nil
		case !errors.Is(derr, ErrNotFound):
			return nil, derr
		case errors.Is(kerr, ErrNotFound):
			return nil, kerr // a miss, perhaps with the reason of a damaged entry
		}
		return nil, ErrNotFound
	}
	return s.disk().Load(k)
}

// Lock takes the session's lock (see Store.Lock). With Nowhere there is
// no shared session to guard, and the lock is a formality.
func (s *Sessions) Lock(ctx context.Context, id string, onWait func()) (*Lock, error) {
	if s.Storage == Nowhere {
		return &Lock{}, nil
	}
	return s.disk().Lock(ctx, id, onWait)
}

// Current is the session as it stands, for a caller that holds its lock:
// what a killed writer left is recovered first (see Store.Recover), then
// the newest of every copy is returned: the file, and the keyring's entry
// when the keyring is the storage or an index record says it holds one.
//
// It returns ErrNotFound when there is no usable copy (unusable files
// are told to Warn), a *KeyringError when the keyring holds a session
// that may be newer than any other copy but cannot be read (locked, not
// answering): the caller must not start a new sign-in over it. Any other
// error is about the cache directory itself.
func (s *Sessions) Current(k Key) (*Entry, error) {
	if s.Storage == Nowhere {
		return nil, ErrNotFound
	}
	id := k.ID()
	d := s.disk()
	if recovered, err := d.recover(id); recovered {
		s.notef("recovered the session a killed process had saved but not yet put in place")
	} else if err != nil {
		s.warnf("%v", err)
	}
	de, derr := d.Load(k)
	var bad *BadFileError
	switch {
	case errors.As(derr, &bad):
		s.warnf("%v", derr)
	case derr != nil && !errors.Is(derr, ErrNotFound):
		return nil, derr
	}
	if !s.keyringMayHold(id) {
		return found(de)
	}
	kr := s.keyring()
	ke, kerr := kr.get(id)
	var kerror *KeyringError
	switch {
	case errors.As(kerr, &kerror):
		// The keyring's copy is newer than the file only if the index
		// record says so; without a record nothing is known to be there.
		rec, rerr := kr.readRecord(id)
		if rerr == nil && (de == nil || rec.IssuedAt.After(de.IssuedAt)) {
			return nil, kerr
		}
		s.notef("not reading the keyring: %v", kerr)
	case kerr != nil && !errors.Is(kerr, ErrNotFound):
		s.warnf("%v", kerr)
	}
	if ke != nil && ke.newer(de) {
		return ke, nil
	}
	return found(de)
}

func found(e *Entry) (*Entry, error) {
	if e == nil {
		return nil, ErrNotFound
	}
	return e, nil
}

// Pending is a save prepared before a refresh token is spent: the room
// for the new session is taken in the cache directory, so that a
// directory that is read-only or full shows itself while the old refresh
// token is still unspent.
type Pending struct {
	s   *Sessions
	id  string
	res *reservation // nil with Nowhere
}

// Prepare takes the room for a new session of the session with this ID;
// size is the size of the current one, if known. The caller holds the
// lock and calls Commit or Cancel.
func (s *Sessions) Prepare(id string, size int) (*Pending, error) {
	p := &Pending{s: s, id: id}
	if s.Storage == Nowhere {
		return p, nil
	}
	res, err := s.disk().reserve(id, size)
	if err != nil {
		return nil, err
	}
	p.res = res
	return p, nil
}

// Cancel gives the room back.
func (p *Pending) Cancel() {
	if p.res != nil {
		p.res.Cancel()
	}
}

// Commit saves e as the session, in place of every older copy: to the
// keyring when it is the storage (to a file, with a warning, when the
// keyring cannot take it), else to a file; then other copies are
// removed, so that no stale copy keeps a spent refresh token.
func (p *Pending) Commit(e *Entry) error {
	s := p.s
	if p.res == nil {
		return nil
	}
	kr := s.keyring()
	if s.Storage == Keyring {
		kerr := kr.put(e)
		if kerr == nil {
			p.res.Cancel()
			if err := s.disk().remove(p.id); err != nil {
				s.warnf("%v", err)
			}
			return nil
		}
		if err := p.res.Commit(e); err != nil {
			return fmt.Errorf("cannot save the session in the keyring (%v), nor on disk: %v", kerr, err)
		}
		if !s.warned {
			s.warned = true
			s.warnf("warning: the keyring cannot be used: %v; the session is saved in %s (readable only by you) instead. To keep sessions in the keyring, unlock it or start a Secret Service; to keep them on disk without this warning, use --token-cache=disk", kerr, s.disk().Path(p.id))
		}
		return nil
	}
	if err := p.res.Commit(e); err != nil {
		return err
	}
	if kr.hasRecord(p.id) {
		if err := kr.remove(p.id); err != nil {
			s.warnf("the session is saved in %s, but its older copy in the keyring could not be removed: %v", s.disk().Path(p.id), err)
		}
	}
	return nil
}

// Save saves e (Prepare, then Commit). The caller holds the lock.
func (s *Sessions) Save(e *Entry) error {
	p, err := s.Prepare(e.Key.ID(), 0)
	if err != nil {
		return err
	}
	return p.Commit(e)
}

// Forget removes every copy of the session with this ID that still holds
// spent, a refresh token that was spent and whose successor could not be
// saved, so that no later run offers it again (providers that detect
// reuse end the whole session when one does). A copy that cannot be
// removed is rewritten in place without its tokens. It returns what it
// could not do.
func (s *Sessions) Forget(id, spent string) error {
	copies, err := s.Copies(id)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range copies {
		if c.Entry == nil || c.Entry.RefreshToken != spent {
			continue
		}
		switch c.Place {
		case InKeyring:
			errs = append(errs, s.keyring().remove(id))
		default:
			if err := removeFile(c.Path); err != nil {
				errs = append(errs, scrub(c.Path, err))
			}
		}
	}
	return errors.Join(errs...)
}

// scrub empties a file that could not be removed (its directory is
// read-only, but the file itself may still be written), or says why not.
func scrub(path string, removeErr error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("%v, nor emptied (%s)", removeErr, describe(err))
	}
	return f.Close()
}

// Place says where a copy of a session is.
type Place string

// Where copies of sessions are found.
const (
	InFile     Place = "file"
	InKeyring  Place = "keyring"
	InTempFile Place = "temporary file"
)

// Copy is one copy of a session.
type Copy struct {
	// Place and Path say where it is: for the keyring, Path is its
	// index record.
	Place Place
	Path  string
	// Entry is the session, nil when Err says why it cannot be read.
	Entry *Entry
	Err   error
	// Record is the index record of a keyring copy, when it can be read.
	Record *KeyringRecord
}

// Copies lists every copy of the session with this ID, usable or not:
// the session file, temporary files an interrupted save left, and the
// keyring's entry when an index record names one (or the keyring is the
// storage). The caller holds the lock.
func (s *Sessions) Copies(id string) ([]Copy, error) {
	d := s.disk()
	var out []Copy
	if e, err := d.LoadFile(d.Path(id)); !errors.Is(err, ErrNotFound) {
		out = append(out, Copy{Place: InFile, Path: d.Path(id), Entry: e, Err: err})
	}
	for _, p := range d.temps(id) {
		if e, err := d.LoadFile(p); err == nil && e.Key.ID() == id {
			out = append(out, Copy{Place: InTempFile, Path: p, Entry: e})
		}
	}
	if !s.keyringMayHold(id) {
		return out, nil
	}
	kr := s.keyring()
	c := Copy{Place: InKeyring, Path: kr.recordPath(id)}
	c.Record, c.Err = kr.readRecord(id)
	var kerr error
	c.Entry, kerr = kr.get(id)
	switch {
	case errors.Is(kerr, ErrNotFound) && c.Record == nil && !kr.hasRecord(id):
		// Nothing in the keyring, nothing on disk about it. The record is
		// looked for again, after the reads: status lists without the
		// lock, and a logout may have removed it since the first look.
		return out, nil
	case c.Err != nil:
		// The index record is unusable; its reason says more than the
		// keyring's.
	case errors.Is(kerr, ErrNotFound) && !errors.As(kerr, new(*BadKeyringEntryError)):
		c.Err = &BadKeyringEntryError{id, "the keyring has no such item (deleted outside this program?); logout removes this record"}
	case kerr != nil:
		c.Err = kerr
	}
	return append(out, c), nil
}

// Remove deletes every copy of the session with this ID (see Copies) and
// its failure note. The caller holds the lock; Lock.ReleaseAndRemove then
// removes the lock file. It fails, keeping the index record, when the
// keyring holds the session but cannot be used.
func (s *Sessions) Remove(id string) error {
	d := s.disk()
	errs := []error{d.remove(id)}
	for _, p := range d.temps(id) {
		errs = append(errs, removeFile(p))
	}
	if s.keyringMayHold(id) {
		errs = append(errs, s.keyring().remove(id))
	}
	errs = append(errs, d.ClearFailure(id))
	return errors.Join(errs...)
}

// Listed is a session found in the cache directory, with every copy of it.
type Listed struct {
	ID     string
	Copies []Copy
	// Failure is its remembered failure, if any.
	Failure *Failure
}

// Key is the login identity of the session, from its first readable copy
// or index record; ok is false when no copy tells.
func (l Listed) Key() (k Key, ok bool) {
	for _, c := range l.Copies {
		switch {
		case c.Entry != nil:
			return c.Entry.Key, true
		case c.Record != nil:
			return c.Record.Key, true
		}
	}
	return Key{}, false
}

// Newest is the newest readable copy of the session, or nil.
func (l Listed) Newest() *Entry {
	var e *Entry
	for _, c := range l.Copies {
		if c.Entry != nil && c.Entry.newer(e) {
			e = c.Entry
		}
	}
	return e
}

// IDs lists the IDs of every session with any file in the cache
// directory: a session file, a temporary file, an index record, a lock
// or a failure note. It first checks that the directory is safe to read
// sessions from (a missing one holds none).
func (s *Sessions) IDs() ([]string, error) {
	if err := s.disk().checkExisting(); err != nil {
		return nil, err
	}
	files, err := s.disk().files()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, f := range files {
		ids = append(ids, f.id)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// List describes every session that has a copy in the cache directory or
// the keyring (through its index record), with what logout would end. It
// reads the keyring only for sessions that have an index record.
func (s *Sessions) List() ([]Listed, error) {
	ids, err := s.IDs()
	if err != nil {
		return nil, err
	}
	var out []Listed
	for _, id := range ids {
		copies, err := s.Copies(id)
		if err != nil {
			return nil, err
		}
		if len(copies) == 0 {
			continue // a lock or failure note only
		}
		out = append(out, Listed{ID: id, Copies: copies, Failure: s.disk().LastFailure(id)})
	}
	return out, nil
}

// RemoveAll removes every file of every session in the cache directory
// and, when the keyring is the storage or held sessions, every item of
// this cache directory's keyring service (including any an interrupted
// save left). It is for logout --all, after each session was ended; the
// directory itself is removed when nothing else is left in it.
func (s *Sessions) RemoveAll(keyringToo bool) error {
	files, err := s.disk().files()
	if err != nil {
		return err
	}
	var errs []error
	if keyringToo || s.Storage == Keyring {
		errs = append(errs, s.keyring().deleteAll())
	}
	for _, f := range files {
		if f.kind == kindLock {
			continue // removed by their holders
		}
		errs = append(errs, removeFile(f.path))
	}
	return errors.Join(errs...)
}

// RemoveDirIfEmpty removes the cache directory when nothing is left in
// it, leaving things as they were before the first sign-in.
func (s *Sessions) RemoveDirIfEmpty() {
	os.Remove(s.Dir) // fails, harmlessly, unless empty
}

// CheckKeyring reports whether the keyring can be used now.
func (s *Sessions) CheckKeyring() error { return s.keyring().check() }

// KeyringService is the keyring service name of this cache directory.
func (s *Sessions) KeyringService() string { return s.keyring().service() }

// RecordFailure, LastFailure and ClearFailure keep the failure notes of
// the cache directory (see Store).
func (s *Sessions) RecordFailure(id string, f Failure) error { return s.disk().RecordFailure(id, f) }

// LastFailure returns the remembered failure of the session, or nil.
func (s *Sessions) LastFailure(id string) *Failure { return s.disk().LastFailure(id) }

// ClearFailure forgets the remembered failure of the session.
func (s *Sessions) ClearFailure(id string) error { return s.disk().ClearFailure(id) }
