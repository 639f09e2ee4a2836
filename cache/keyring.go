package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/zalando/go-keyring"
)

// DefaultKeyringTimeout bounds each keyring operation: long enough for a
// person to answer an unlock dialog, short enough that a keyring that never
// answers does not hang kubectl for good.
const DefaultKeyringTimeout = 30 * time.Second

// minChunk is the smallest item size a Keyring uses; it bounds the number
// of parts a head item may announce.
const minChunk = 1024

// keyringFormat starts the head item of every session in the keyring.
const keyringFormat = "kubectl-device-login/keyring/v1"

// RecordFormat is the "format" field of the index records a Keyring keeps
// on disk.
const RecordFormat = "kubectl-device-login/keyring-record/v1"

// recordExt ends the file name of an index record, DIR/ID.keyring.
const recordExt = ".keyring"

// Keyring keeps sessions in the operating system's keyring through
// github.com/zalando/go-keyring: the macOS Keychain, the Windows
// Credential Manager, or a Secret Service (GNOME Keyring, KeePassXC) over
// the D-Bus session bus.
//
// A session is the same JSON document a Store writes, split into items no
// larger than the platform allows (platformChunk: 2 KiB on macOS and
// Windows, 64 KiB for a Secret Service): a head item whose account is the session's ID holds a
// header (slot, number of parts, SHA-256 of the whole) and the first part;
// the other parts are "ID-a1", "ID-a2"… or "ID-b1"…. Each save writes the
// parts of the slot not in use, then replaces the head, then deletes the
// old slot's parts, so a reader without the lock sees the old session or
// the new one (or a miss, and then re-reads under the lock), never a mix.
//
// Keyrings cannot be listed portably, so each session also has a
// token-free index record on disk, DIR/ID.keyring (see KeyringRecord), for
// status and logout --all.
//
// When the keyring cannot be used (no D-Bus session bus, no Secret
// Service, locked, or not answering), the session is saved in Disk
// instead and Warn is called once; Load reads the newer of the keyring's
// entry and a disk file, so such a session is found again, and the next
// save that reaches the keyring moves it there and deletes the file.
//
// A Keyring remembers, for the rest of the run, that the keyring failed:
// it is a value for one run, not for sharing between goroutines.
type Keyring struct {
	// Disk holds the index records, the fallback files, the lock and the
	// failure markers.
	Disk Store
	// Warn, if set, is called once when a session is written to disk
	// because the keyring cannot be used: path is the file, reason says
	// why.
	Warn func(path string, reason error)
	// Note, if set, is told about keyring problems that do not change
	// where a session goes (for -v).
	Note func(msg string)
	// Timeout bounds each keyring operation (default
	// DefaultKeyringTimeout).
	Timeout time.Duration
	// Context, if set, ends a wait for the keyring early (Ctrl-C).
	Context context.Context

	// chunk is the item size; 0 means platformChunk (tests set it).
	chunk int

	unusable error // why the keyring cannot be used, once known
	warned   bool
}

// KeyringRecord is the token-free index record of a session kept in the
// keyring, written as DIR/ID.keyring next to the lock.
type KeyringRecord struct {
	// Key is the login identity.
	Key Key `json:"key"`
	// Service and Account name the keyring item that holds the session.
	Service string `json:"service"`
	Account string `json:"account"`
	// Expiry and IDTokenExpiry are the tokens' expiry times, and IssuedAt
	// when they were received, as of the last save.
	Expiry        time.Time `json:"expiry,omitzero"`
	IDTokenExpiry time.Time `json:"id_token_expiry,omitzero"`
	IssuedAt      time.Time `json:"issued_at"`
	// Refreshable tells whether a refresh token is held.
	Refreshable bool `json:"refreshable"`
}

type recordFile struct {
	Format string `json:"format"`
	KeyringRecord
}

// BadKeyringEntryError reports a keyring entry that exists but cannot be
// used: incomplete, damaged, or not ours. It counts as ErrNotFound, since
// a reader racing a save can see one for a moment; the save under the lock
// replaces it.
type BadKeyringEntryError struct {
	Account string
	Reason  string
}

func (e *BadKeyringEntryError) Error() string {
	return fmt.Sprintf("ignoring the keyring entry %q: %s", e.Account, e.Reason)
}

// Is makes a bad entry a miss.
func (e *BadKeyringEntryError) Is(target error) bool { return target == ErrNotFound }

// Service is the keyring service name of this cache directory's sessions:
// "kubectl-device-login:" and the directory's absolute path, so that
// different cache directories never share (or sign out) each other's
// sessions.
func (k *Keyring) Service() string {
	dir, err := filepath.Abs(k.Disk.Dir)
	if err != nil {
		dir = k.Disk.Dir
	}
	return "kubectl-device-login:" + dir
}

// RecordPath is the index record of the session with this ID.
func (k *Keyring) RecordPath(id string) string {
	return filepath.Join(k.Disk.Dir, id+recordExt)
}

// HasRecord tells whether an index record exists for this ID, that is,
// whether the keyring is meant to hold this session. It does not touch
// the keyring.
func (k *Keyring) HasRecord(id string) bool {
	_, err := os.Lstat(k.RecordPath(id))
	return err == nil
}

// Load returns the newer of the keyring's entry and a disk file (left by a
// fallback, or from before the switch to the keyring). A keyring that
// cannot be used is a miss for the keyring's part, reported to Note.
func (k *Keyring) Load(key Key) (*Entry, error) {
	ke, kerr := k.loadKeyring(key)
	if kerr != nil && !errors.Is(kerr, ErrNotFound) {
		k.note("not reading the keyring: %v", kerr)
	}
	de, derr := k.Disk.Load(key)
	switch {
	case ke != nil && de != nil:
		if de.IssuedAt.After(ke.IssuedAt) {
			return de, nil
		}
		return ke, nil
	case ke != nil:
		return ke, nil
	case de != nil:
		return de, nil
	case !errors.Is(derr, ErrNotFound):
		return nil, derr
	case kerr != nil && errors.Is(kerr, ErrNotFound):
		return nil, kerr
	}
	return nil, ErrNotFound
}

// Save writes e to the keyring, then its index record, and deletes a disk
// file of the same session. When the keyring cannot be used, e is saved in
// Disk instead and Warn is called (once per Keyring): a fresh session is
// never lost because of the keyring.
func (k *Keyring) Save(e *Entry) error {
	data, err := json.Marshal(file{Format: Format, Entry: *e})
	if err != nil {
		return fmt.Errorf("encoding the session: %w", err)
	}
	id := e.Key.ID()
	kerr := k.saveKeyring(id, data)
	if kerr == nil {
		if err := k.writeRecord(e); err != nil {
			k.note("the session is in the keyring, but its index record could not be written, so status will not list it: %v", err)
		}
		if err := k.Disk.Delete(id); err != nil {
			k.note("%v", err)
		}
		return nil
	}
	if err := k.Disk.Save(e); err != nil {
		return fmt.Errorf("cannot save the session in the keyring (%v), nor on disk: %v", kerr, err)
	}
	if k.Warn != nil && !k.warned {
		k.warned = true
		k.Warn(k.Disk.Path(id), kerr)
	}
	return nil
}

// Delete removes the session from the keyring and from disk (a fallback
// file), then its index record. When the keyring cannot be used and an
// index record says it holds the session, Delete fails and keeps the
// record, so that status still shows the session and a later logout can
// finish the job; without a record there is nothing known to be left.
func (k *Keyring) Delete(id string) error {
	kerr := k.deleteItems(id)
	derr := k.Disk.Delete(id)
	if kerr != nil {
		if k.HasRecord(id) {
			return fmt.Errorf("cannot delete the session from the keyring: %v", kerr)
		}
		k.note("not deleting from the keyring: %v", kerr)
	}
	if err := os.Remove(k.RecordPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot delete %s: %s", k.RecordPath(id), describe(err))
	}
	return derr
}

// DeleteAll removes every item of this cache directory's service from the
// keyring, including any left by an interrupted save. Index records are
// not touched.
func (k *Keyring) DeleteAll() error {
	service := k.Service()
	_, err := k.do(func() (string, error) { return "", keyring.DeleteAll(service) })
	return err
}

// Check reports whether the keyring can be used now, by looking up an
// item that does not exist (which unlocks the keyring, or asks to).
func (k *Keyring) Check() error {
	_, err := k.get("kubectl-device-login-check")
	if errors.Is(err, keyring.ErrNotFound) {
		return nil
	}
	return err
}

// List reads the index records in Disk.Dir and each session they point to
// in the keyring. A record whose session cannot be read is listed with
// Err set and Record filled in. No record means no keyring access at all.
func (k *Keyring) List() ([]Listed, error) {
	des, err := os.ReadDir(k.Disk.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list %s: %s", k.Disk.Dir, describe(err))
	}
	var out []Listed
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, recordExt) {
			continue
		}
		id := strings.TrimSuffix(name, recordExt)
		l := Listed{Path: filepath.Join(k.Disk.Dir, name), ID: id}
		rec, err := k.readRecord(l.Path, id)
		if err != nil {
			// Still a keyring session, of an unknown login.
			l.Err, l.Record = err, &KeyringRecord{Service: k.Service(), Account: id}
			out = append(out, l)
			continue
		}
		l.Record = rec
		l.Entry, l.Err = k.loadKeyring(rec.Key)
		if l.Err == ErrNotFound {
			l.Err = &BadKeyringEntryError{id, "the keyring has no such item (deleted outside this program?); logout removes this record"}
		}
		out = append(out, l)
	}
	return out, nil
}

// loadKeyring reads and checks the session of key from the keyring.
func (k *Keyring) loadKeyring(key Key) (*Entry, error) {
	id := key.ID()
	head, err := k.get(id)
	if err != nil {
		if errors.Is(err, keyring.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	h, ok := parseHead(head)
	if !ok {
		return nil, &BadKeyringEntryError{id, "it was not written by this version of kubectl-device-login; it will be replaced at the next sign-in"}
	}
	data := []byte(h.first)
	for i := 1; i < h.parts; i++ {
		part, err := k.get(partAccount(id, h.slot, i))
		if errors.Is(err, keyring.ErrNotFound) {
			return nil, &BadKeyringEntryError{id, fmt.Sprintf("part %d of %d is missing (it is being rewritten, or was damaged)", i+1, h.parts)}
		}
		if err != nil {
			return nil, err
		}
		data = append(data, part...)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != h.sum {
		return nil, &BadKeyringEntryError{id, "its parts do not match (it is being rewritten, or was damaged)"}
	}
	e, reason := Decode(data)
	if reason == "" && e.Key.ID() != id {
		reason = "it belongs to another login (its key does not match its name)"
	}
	if reason != "" {
		return nil, &BadKeyringEntryError{id, reason}
	}
	return e, nil
}

// saveKeyring writes data as the session with this ID: the parts of the
// free slot, then the head, then the old slot's parts are deleted.
func (k *Keyring) saveKeyring(id string, data []byte) error {
	oldSlot, oldParts := "", 0
	switch head, err := k.get(id); {
	case err == nil:
		if h, ok := parseHead(head); ok {
			oldSlot, oldParts = h.slot, h.parts
		}
	case !errors.Is(err, keyring.ErrNotFound):
		return err
	}
	slot := "a"
	if oldSlot == "a" {
		slot = "b"
	}
	sum := sha256.Sum256(data)
	chunk := k.chunk
	if chunk < minChunk {
		chunk = platformChunk
	}
	parts := split(data, chunk-len(headLine(slot, 9999, "")), chunk)
	header := headLine(slot, len(parts), hex.EncodeToString(sum[:]))
	for i := 1; i < len(parts); i++ {
		if err := k.set(partAccount(id, slot, i), parts[i]); err != nil {
			return err
		}
	}
	if err := k.sweep(id, slot, len(parts)); err != nil {
		return err
	}
	if err := k.set(id, header+parts[0]); err != nil {
		return err
	}
	if oldSlot != "" {
		k.deleteParts(id, oldSlot, oldParts)
	}
	return nil
}

// deleteItems removes the head and every part of the session.
func (k *Keyring) deleteItems(id string) error {
	head, err := k.get(id)
	switch {
	case err == nil:
		if err := k.del(id); err != nil && !errors.Is(err, keyring.ErrNotFound) {
			return err
		}
		if h, ok := parseHead(head); ok {
			k.deleteParts(id, h.slot, h.parts)
		}
	case !errors.Is(err, keyring.ErrNotFound):
		return err
	}
	for _, slot := range []string{"a", "b"} {
		if err := k.sweep(id, slot, 1); err != nil {
			return err
		}
	}
	return nil
}

// deleteParts deletes parts 1..n-1 of a slot, last first, so that an
// interrupted deletion leaves parts 1..m, which sweep finds.
func (k *Keyring) deleteParts(id, slot string, n int) {
	for i := n - 1; i >= 1; i-- {
		if err := k.del(partAccount(id, slot, i)); err != nil && !errors.Is(err, keyring.ErrNotFound) {
			k.note("could not delete an old part of the session from the keyring: %v", err)
			return
		}
	}
}

// sweep deletes parts from..m of a slot, left by an interrupted save; parts
// are always written and deleted so that they form an unbroken run.
func (k *Keyring) sweep(id, slot string, from int) error {
	for i := from; ; i++ {
		err := k.del(partAccount(id, slot, i))
		if errors.Is(err, keyring.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (k *Keyring) get(account string) (string, error) {
	service := k.Service()
	return k.do(func() (string, error) { return keyring.Get(service, account) })
}

func (k *Keyring) set(account, value string) error {
	service := k.Service()
	_, err := k.do(func() (string, error) { return "", keyring.Set(service, account, value) })
	return err
}

func (k *Keyring) del(account string) error {
	service := k.Service()
	_, err := k.do(func() (string, error) { return "", keyring.Delete(service, account) })
	return err
}

// do runs one keyring operation with a time limit. The first failure
// other than keyring.ErrNotFound marks the keyring unusable for the rest
// of the run, so that a missing or locked keyring costs one failure, not
// one per item.
func (k *Keyring) do(op func() (string, error)) (string, error) {
	if k.unusable != nil {
		return "", k.unusable
	}
	if err := busReachable(); err != nil {
		k.unusable = err
		return "", err
	}
	type result struct {
		v   string
		err error
	}
	ch := make(chan result, 1)
	// go-keyring's calls cannot be cancelled; one that never returns is
	// left behind when the time is up (the run ends soon after).
	go func() {
		// go-keyring v0.2.8 dereferences a nil signal when the bus goes
		// away while it waits for an unlock prompt; that must not take
		// the plugin down.
		defer func() {
			if r := recover(); r != nil {
				ch <- result{"", fmt.Errorf("go-keyring failed: %v", r)}
			}
		}()
		v, err := op()
		ch <- result{v, err}
	}()
	timeout := k.Timeout
	if timeout <= 0 {
		timeout = DefaultKeyringTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var done <-chan struct{}
	if k.Context != nil {
		done = k.Context.Done()
	}
	select {
	case r := <-ch:
		if r.err == nil || errors.Is(r.err, keyring.ErrNotFound) {
			return r.v, r.err
		}
		k.unusable = keyringProblem(r.err)
	case <-timer.C:
		k.unusable = fmt.Errorf("the keyring did not answer within %s (an unlock dialog nobody answered?)", timeout)
	case <-done:
		k.unusable = fmt.Errorf("stopped waiting for the keyring: %w", k.Context.Err())
	}
	return "", k.unusable
}

// keyringProblem words a keyring failure. go-keyring's errors name no
// secret: D-Bus error messages, or the Keychain's and Credential Manager's.
func keyringProblem(err error) error {
	msg := truncate(strings.TrimSpace(err.Error()), 200)
	switch {
	case errors.Is(err, keyring.ErrSetDataTooBig):
		return fmt.Errorf("the keyring refused an item as too large")
	case errors.Is(err, keyring.ErrUnsupportedPlatform):
		return fmt.Errorf("go-keyring does not support this platform")
	case strings.Contains(msg, "unlock"):
		return fmt.Errorf("the keyring is locked and could not be unlocked (%s)", msg)
	case strings.HasPrefix(msg, "dial ") || strings.HasPrefix(msg, "dbus: "):
		return fmt.Errorf("cannot reach the D-Bus session bus named by DBUS_SESSION_BUS_ADDRESS (%s)", msg)
	case strings.Contains(msg, "org.freedesktop.secrets"):
		return fmt.Errorf("no Secret Service (such as gnome-keyring) runs on the D-Bus session bus (%s)", msg)
	}
	return fmt.Errorf("the keyring failed: %s", msg)
}

func (k *Keyring) note(format string, args ...any) {
	if k.Note != nil {
		k.Note(fmt.Sprintf(format, args...))
	}
}

// writeRecord writes the token-free index record of e.
func (k *Keyring) writeRecord(e *Entry) error {
	id := e.Key.ID()
	data, err := json.MarshalIndent(recordFile{RecordFormat, KeyringRecord{
		Key: e.Key, Service: k.Service(), Account: id,
		Expiry: e.Expiry, IDTokenExpiry: e.IDTokenExpiry, IssuedAt: e.IssuedAt,
		Refreshable: e.RefreshToken != "",
	}}, "", "  ")
	if err != nil {
		return err
	}
	return k.Disk.writeAtomic(id, k.RecordPath(id), append(data, '\n'))
}

// readRecord reads an index record with the checks Load applies to
// session files.
func (k *Keyring) readRecord(path, id string) (*KeyringRecord, error) {
	data, err := readPrivate(path, 64<<10)
	if errors.Is(err, ErrNotFound) {
		return nil, &BadFileError{path, "it disappeared while being read"}
	}
	if err != nil {
		return nil, err
	}
	var r recordFile
	switch {
	case json.Unmarshal(data, &r) != nil:
		return nil, &BadFileError{path, "it is not valid JSON (a damaged or foreign file)"}
	case r.Format != RecordFormat:
		return nil, &BadFileError{path, fmt.Sprintf("it has format %q, not %q", truncate(r.Format, 60), RecordFormat)}
	case r.Key.ID() != id:
		return nil, &BadFileError{path, "it belongs to another login (its key does not match its name)"}
	}
	return &r.KeyringRecord, nil
}

// head is a parsed head item.
type head struct {
	slot  string
	parts int
	sum   string
	first string
}

func headLine(slot string, parts int, sum string) string {
	if sum == "" {
		sum = strings.Repeat("0", 64)
	}
	return fmt.Sprintf("%s %s %d %s\n", keyringFormat, slot, parts, sum)
}

func parseHead(v string) (head, bool) {
	line, rest, ok := strings.Cut(v, "\n")
	f := strings.Fields(line)
	if !ok || len(f) != 4 || f[0] != keyringFormat || (f[1] != "a" && f[1] != "b") || len(f[3]) != 64 {
		return head{}, false
	}
	n, err := strconv.Atoi(f[2])
	if err != nil || n < 1 || n > maxFileSize/minChunk+1 {
		return head{}, false
	}
	return head{slot: f[1], parts: n, sum: f[3], first: rest}, true
}

func partAccount(id, slot string, i int) string {
	return id + "-" + slot + strconv.Itoa(i)
}

// split cuts data into parts: the first at most first bytes, the others
// at most chunk, never inside a UTF-8 sequence.
func split(data []byte, first, chunk int) []string {
	var parts []string
	size := first
	for len(data) > size {
		cut := size
		for cut > 0 && !utf8.RuneStart(data[cut]) {
			cut--
		}
		if cut == 0 {
			cut = size
		}
		parts = append(parts, string(data[:cut]))
		data = data[cut:]
		size = chunk
	}
	return append(parts, string(data))
}
