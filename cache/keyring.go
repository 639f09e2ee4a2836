package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gokeyring "github.com/zalando/go-keyring"
)

// defaultKeyringTimeout bounds each keyring operation: long enough for a
// person to answer an unlock dialog, short enough that a keyring that never
// answers does not hang kubectl for good.
const defaultKeyringTimeout = 30 * time.Second

// minChunk is the smallest item size a Keyring uses; it bounds the number
// of parts a head item may announce.
const minChunk = 1024

// keyringFormat starts the head item of every session in the keyring.
const keyringFormat = "kubectl-device-login/keyring/v1"

// recordFormat is the "format" field of the index records a Keyring keeps
// on disk.
const recordFormat = "kubectl-device-login/keyring-record/v1"

// recordExt ends the file name of an index record, DIR/ID.keyring.
const recordExt = ".keyring"

// keyring keeps sessions in the operating system's keyring through
// github.com/zalando/go-keyring: the macOS Keychain, the Windows
// Credential Manager, or a Secret Service (GNOME Keyring, KeePassXC) over
// the D-Bus session bus.
//
// A session is the same JSON document a Store writes, split into items no
// larger than the platform allows (platformChunk: 2 KiB on macOS and
// Windows, 64 KiB for a Secret Service): a head item whose account is the
// session's ID holds a header (slot, number of parts, SHA-256 of the
// whole) and the first part; the other parts are "ID-a1", "ID-a2"… or
// "ID-b1"…. Each save writes the parts of the slot not in use, then
// replaces the head, then deletes the old slot's parts, so a reader
// without the lock sees the old session or the new one (or a miss, and
// then re-reads under the lock), never a mix.
//
// Keyrings cannot be listed portably, so each session also has a
// token-free index record on disk, DIR/ID.keyring (see KeyringRecord), for
// status and logout --all.
//
// A keyring remembers, for the rest of the run, that the keyring failed:
// it is a value for one run, not for sharing between goroutines.
type keyring struct {
	// disk holds the index records.
	disk Store
	// note, if set, is told about keyring problems (for -v).
	note func(format string, args ...any)
	// timeout bounds each keyring operation (default
	// defaultKeyringTimeout).
	timeout time.Duration
	// ctx, if set, ends a wait for the keyring early (Ctrl-C).
	ctx context.Context

	// chunk is the item size; 0 means platformChunk (tests set it).
	chunk int

	unusable *KeyringError // why the keyring cannot be used, once known
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

// KeyringError reports that the keyring cannot be used: there is no
// Secret Service, it is locked, or it does not answer.
type KeyringError struct {
	// Locked is true when the keyring refused because it is locked: a
	// person can unlock it.
	Locked bool
	Err    error
}

func (e *KeyringError) Error() string { return e.Err.Error() }
func (e *KeyringError) Unwrap() error { return e.Err }

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

// service is the keyring service name of this cache directory's sessions:
// "kubectl-device-login:" and the directory's absolute path, so that
// different cache directories never share (or sign out) each other's
// sessions.
func (k *keyring) service() string {
	dir, err := filepath.Abs(k.disk.Dir)
	if err != nil {
		dir = filepath.Clean(k.disk.Dir)
	}
	return "kubectl-device-login:" + dir
}

// recordPath is the index record of the session with this ID.
func (k *keyring) recordPath(id string) string {
	return filepath.Join(k.disk.Dir, id+recordExt)
}

// hasRecord tells whether an index record exists for this ID, that is,
// whether the keyring is meant to hold this session. It does not touch
// the keyring.
func (k *keyring) hasRecord(id string) bool {
	_, err := os.Lstat(k.recordPath(id))
	return err == nil
}

// put writes e to the keyring, then its index record.
func (k *keyring) put(e *Entry) error {
	data, err := e.encode()
	if err != nil {
		return err
	}
	id := e.Key.ID()
	if err := k.saveItems(id, data); err != nil {
		return err
	}
	if err := k.writeRecord(e); err != nil {
		k.notef("the session is in the keyring, but its index record could not be written, so status will not list it: %v", err)
	}
	return nil
}

// remove deletes the session's items from the keyring, then its index
// record. When the keyring cannot be used and a record says it holds the
// session, remove fails and keeps the record, so that status still shows
// the session and a later logout can finish the job.
func (k *keyring) remove(id string) error {
	if err := k.deleteItems(id); err != nil {
		if k.hasRecord(id) {
			return fmt.Errorf("cannot delete the session from the keyring: %w", err)
		}
		k.notef("not deleting from the keyring: %v", err)
	}
	return removeFile(k.recordPath(id))
}

// deleteAll removes every item of this cache directory's service from the
// keyring, including any left by an interrupted save. Index records are
// not touched.
func (k *keyring) deleteAll() error {
	service := k.service()
	_, err := k.do(func() (string, error) { return "", gokeyring.DeleteAll(service) })
	return err
}

// check reports whether the keyring can be used now, by looking up an
// item that does not exist (which unlocks the keyring, or asks to).
func (k *keyring) check() error {
	_, err := k.getItem("kubectl-device-login-check")
	if errors.Is(err, gokeyring.ErrNotFound) {
		return nil
	}
	return err
}

// get reads and checks the session with this ID from the keyring.
func (k *keyring) get(id string) (*Entry, error) {
	head, err := k.getItem(id)
	if err != nil {
		if errors.Is(err, gokeyring.ErrNotFound) {
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
		part, err := k.getItem(partAccount(id, h.slot, i))
		if errors.Is(err, gokeyring.ErrNotFound) {
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
	e, reason := decodeFor(data, id)
	if reason != "" {
		return nil, &BadKeyringEntryError{id, reason}
	}
	return e, nil
}

// saveItems writes data as the session with this ID: the parts of the
// free slot, then the head, then the old slot's parts are deleted.
func (k *keyring) saveItems(id string, data []byte) error {
	oldSlot, oldParts := "", 0
	switch head, err := k.getItem(id); {
	case err == nil:
		if h, ok := parseHead(head); ok {
			oldSlot, oldParts = h.slot, h.parts
		}
	case !errors.Is(err, gokeyring.ErrNotFound):
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
func (k *keyring) deleteItems(id string) error {
	head, err := k.getItem(id)
	switch {
	case err == nil:
		if err := k.del(id); err != nil && !errors.Is(err, gokeyring.ErrNotFound) {
			return err
		}
		if h, ok := parseHead(head); ok {
			k.deleteParts(id, h.slot, h.parts)
		}
	case !errors.Is(err, gokeyring.ErrNotFound):
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
func (k *keyring) deleteParts(id, slot string, n int) {
	for i := n - 1; i >= 1; i-- {
		if err := k.del(partAccount(id, slot, i)); err != nil && !errors.Is(err, gokeyring.ErrNotFound) {
			k.notef("could not delete an old part of the session from the keyring: %v", err)
			return
		}
	}
}

// sweep deletes parts from..m of a slot, left by an interrupted save; parts
// are always written and deleted so that they form an unbroken run.
func (k *keyring) sweep(id, slot string, from int) error {
	for i := from; ; i++ {
		err := k.del(partAccount(id, slot, i))
		if errors.Is(err, gokeyring.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (k *keyring) getItem(account string) (string, error) {
	service := k.service()
	return k.do(func() (string, error) { return gokeyring.Get(service, account) })
}

func (k *keyring) set(account, value string) error {
	service := k.service()
	_, err := k.do(func() (string, error) { return "", gokeyring.Set(service, account, value) })
	return err
}

func (k *keyring) del(account string) error {
	service := k.service()
	_, err := k.do(func() (string, error) { return "", gokeyring.Delete(service, account) })
	return err
}

// do runs one keyring operation with a time limit. The first failure
// other than gokeyring.ErrNotFound marks the keyring unusable for the rest
// of the run, so that a missing or locked keyring costs one failure, not
// one per item.
func (k *keyring) do(op func() (string, error)) (string, error) {
	if k.unusable != nil {
		return "", k.unusable
	}
	if err := busReachable(); err != nil {
		k.unusable = &KeyringError{Err: err}
		return "", k.unusable
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
	timeout := k.timeout
	if timeout <= 0 {
		timeout = defaultKeyringTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var done <-chan struct{}
	if k.ctx != nil {
		done = k.ctx.Done()
	}
	select {
	case r := <-ch:
		if r.err == nil || errors.Is(r.err, gokeyring.ErrNotFound) {
			return r.v, r.err
		}
		k.unusable = keyringProblem(r.err)
	case <-timer.C:
		k.unusable = &KeyringError{Locked: true, Err: fmt.Errorf("the keyring did not answer within %s (an unlock dialog nobody answered?)", timeout)}
	case <-done:
		k.unusable = &KeyringError{Err: fmt.Errorf("stopped waiting for the keyring: %w", k.ctx.Err())}
	}
	return "", k.unusable
}

// keyringProblem words a keyring failure. go-keyring's errors name no
// secret (D-Bus error messages, or the Keychain's and Credential
// Manager's) and have no types, so their text is all there is to go by.
func keyringProblem(err error) *KeyringError {
	msg := truncate(strings.TrimSpace(err.Error()), 200)
	switch {
	case errors.Is(err, gokeyring.ErrSetDataTooBig):
		return &KeyringError{Err: fmt.Errorf("the keyring refused an item as too large")}
	case errors.Is(err, gokeyring.ErrUnsupportedPlatform):
		return &KeyringError{Err: fmt.Errorf("go-keyring does not support this platform")}
	case strings.Contains(msg, "unlock"):
		return &KeyringError{Locked: true, Err: fmt.Errorf("the keyring is locked and could not be unlocked (%s)", msg)}
	case strings.HasPrefix(msg, "dial ") || strings.HasPrefix(msg, "dbus: "):
		return &KeyringError{Err: fmt.Errorf("cannot reach the D-Bus session bus named by DBUS_SESSION_BUS_ADDRESS (%s)", msg)}
	case strings.Contains(msg, "org.freedesktop.secrets"):
		return &KeyringError{Err: fmt.Errorf("no Secret Service (such as gnome-keyring) runs on the D-Bus session bus (%s)", msg)}
	}
	return &KeyringError{Err: fmt.Errorf("the keyring failed: %s", msg)}
}

func (k *keyring) notef(format string, args ...any) {
	if k.note != nil {
		k.note(format, args...)
	}
}

// writeRecord writes the token-free index record of e.
func (k *keyring) writeRecord(e *Entry) error {
	id := e.Key.ID()
	data, err := json.MarshalIndent(recordFile{recordFormat, KeyringRecord{
		Key: e.Key, Service: k.service(), Account: id,
		Expiry: e.Expiry, IDTokenExpiry: e.IDTokenExpiry, IssuedAt: e.IssuedAt,
		Refreshable: e.RefreshToken != "",
	}}, "", "  ")
	if err != nil {
		return err
	}
	return k.disk.writeFile(id, k.recordPath(id), append(data, '\n'))
}

// readRecord reads an index record with the checks Load applies to
// session files.
func (k *keyring) readRecord(id string) (*KeyringRecord, error) {
	path := k.recordPath(id)
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
	case r.Format != recordFormat:
		return nil, &BadFileError{path, fmt.Sprintf("it has format %q, not %q", truncate(r.Format, 60), recordFormat)}
	case r.Key.ID() != id:
		return nil, &BadFileError{path, reasonOtherLogin}
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
