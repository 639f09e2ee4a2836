//go:build linux

package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gokeyring "github.com/zalando/go-keyring"

	"github.com/devicelogin/kubectl-device-login/cache/keyringtest"
)

// These tests run Keyring in this process against a real Secret Service:
// gnome-keyring-daemon on a private D-Bus session bus (keyringtest), read
// back with secret-tool. go-keyring's D-Bus connection is shared by the
// whole process, so the tests run in sequence under one fixture.

// bigEntry is a session whose JSON is about 14 KB: a 10 KB access token
// and a 3 KB ID token, as some providers issue with many group claims.
func bigEntry(seed string) *Entry {
	e := entry()
	e.AccessToken = "at-" + seed + "-" + strings.Repeat("A", 10<<10)
	e.IDToken = "id-" + seed + "-" + strings.Repeat("I", 3<<10)
	e.RefreshToken = "rt-" + seed
	return e
}

// noTokensOnDisk fails when any file in dir holds one of the tokens.
func noTokensOnDisk(t *testing.T, dir string, e *Entry) {
	t.Helper()
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			continue
		}
		for _, tok := range []string{e.AccessToken, e.RefreshToken, e.IDToken} {
			if tok != "" && strings.Contains(string(data), tok) {
				t.Errorf("%s holds a token", de.Name())
			}
		}
	}
}

func TestKeyring(t *testing.T) {
	kr := keyringtest.Start(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", kr.Address)
	id := testKey().ID()

	t.Run("a 14 KB session in 2 KiB items, only in the keyring", func(t *testing.T) {
		// 2 KiB items, as on macOS and Windows (a Secret Service takes
		// the session in one item, as the plugin tests show).
		k := keyringSessions(filepath.Join(t.TempDir(), "c"), 2048)
		e := bigEntry("one")
		if err := k.Save(e); err != nil {
			t.Fatal(err)
		}
		accounts := kr.Accounts(t, k.KeyringService())
		if len(accounts) < 7 || accounts[0] != id || accounts[1] != id+"-a1" {
			t.Fatalf("keyring items %v, want %s and its parts in slot a", accounts, id)
		}
		for _, a := range accounts {
			v, ok := kr.Lookup(t, k.KeyringService(), a)
			if !ok || len(v) > 2048 {
				t.Errorf("item %s: found %t, %d bytes (limit 2048)", a, ok, len(v))
			}
		}
		head, _ := kr.Lookup(t, k.KeyringService(), id)
		if !strings.HasPrefix(head, "kubectl-device-login/keyring/v1 a ") {
			t.Errorf("head item starts %q", head[:min(len(head), 60)])
		}
		got, err := k.Load(testKey())
		if err != nil || got.AccessToken != e.AccessToken || got.IDToken != e.IDToken || got.RefreshToken != e.RefreshToken {
			t.Fatalf("Load: %v", err)
		}
		// On disk: the index record, token-free; no session file.
		noTokensOnDisk(t, k.Dir, e)
		if _, err := os.Stat(k.disk().Path(id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a session file exists: %v", err)
		}
		l, err := k.List()
		if err != nil || len(l) != 1 || len(l[0].Copies) != 1 || l[0].Copies[0].Err != nil || l[0].Copies[0].Record == nil || l[0].Newest().RefreshToken != e.RefreshToken {
			t.Fatalf("List = %+v, %v", l, err)
		}
		if r := l[0].Copies[0].Record; r.Key.ClientID != "kubectl" || !r.Expiry.Equal(e.Expiry) || !r.Refreshable || r.Account != id {
			t.Errorf("record %+v", r)
		}
		if st, _ := os.Stat(k.keyring().recordPath(id)); st == nil || st.Mode().Perm() != 0o600 {
			t.Errorf("record mode %v", st)
		}

		// A rewrite goes to slot b and removes slot a; a small one then
		// needs the head only.
		e2 := bigEntry("two")
		if err := k.Save(e2); err != nil {
			t.Fatal(err)
		}
		accounts = kr.Accounts(t, k.KeyringService())
		if len(accounts) < 7 || accounts[1] != id+"-b1" || strings.Contains(strings.Join(accounts, " "), "-a") {
			t.Errorf("after a rewrite: %v, want slot b only", accounts)
		}
		if got, err := k.Load(testKey()); err != nil || got.RefreshToken != "rt-two" {
			t.Errorf("after a rewrite: %v", err)
		}
		if err := k.Save(entry()); err != nil {
			t.Fatal(err)
		}
		if accounts = kr.Accounts(t, k.KeyringService()); len(accounts) != 1 || accounts[0] != id {
			t.Errorf("a small session left %v", accounts)
		}

		// Delete: keyring items and record gone.
		if err := k.Remove(id); err != nil {
			t.Fatal(err)
		}
		if accounts = kr.Accounts(t, k.KeyringService()); len(accounts) != 0 {
			t.Errorf("Delete left %v", accounts)
		}
		if k.keyring().hasRecord(id) {
			t.Errorf("Delete left the record")
		}
		if _, err := k.Load(testKey()); !errors.Is(err, ErrNotFound) {
			t.Errorf("Load after Delete: %v", err)
		}
	})

	t.Run("a Secret Service takes a 14 KB session in one item", func(t *testing.T) {
		k := keyringSessions(filepath.Join(t.TempDir(), "c"), 0)
		e := bigEntry("one")
		if err := k.Save(e); err != nil {
			t.Fatal(err)
		}
		if accounts := kr.Accounts(t, k.KeyringService()); len(accounts) != 1 || accounts[0] != id {
			t.Errorf("keyring items %v, want the head only", accounts)
		}
		if got, err := k.Load(testKey()); err != nil || got.AccessToken != e.AccessToken {
			t.Errorf("Load: %v", err)
		}
		noTokensOnDisk(t, k.Dir, e)
		k.Remove(id)
	})

	t.Run("a reader racing a writer sees the old or the new session, never a mix", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "c")
		writer := keyringSessions(dir, 2048)
		sessions := []*Entry{bigEntry("x"), entry(), bigEntry("y")}
		if err := writer.Save(sessions[0]); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			for i := 1; i <= 30; i++ {
				if err := writer.Save(sessions[i%3]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		var reads, misses int
		for {
			select {
			case <-done:
				wg.Wait()
				t.Logf("%d reads, %d of them misses while a save was under way", reads, misses)
				if reads-misses == 0 {
					t.Errorf("no read succeeded")
				}
				return
			default:
			}
			// A new Keyring per read, as each kubectl run is a new process.
			e, err := (keyringSessions(dir, 0)).Load(testKey())
			reads++
			switch {
			case errors.Is(err, ErrNotFound):
				misses++
			case err != nil:
				t.Fatalf("read: %v", err)
			case !(e.RefreshToken == "rt-x" && e.AccessToken == sessions[0].AccessToken ||
				e.RefreshToken == "rt" && e.AccessToken == "at" ||
				e.RefreshToken == "rt-y" && e.AccessToken == sessions[2].AccessToken):
				t.Fatalf("read a session that was never saved: refresh token %q", e.RefreshToken)
			}
		}
	})

	t.Run("an interrupted save leaves the old session, and its parts are swept", func(t *testing.T) {
		k := keyringSessions(filepath.Join(t.TempDir(), "c"), 2048)
		if err := k.Save(bigEntry("old")); err != nil {
			t.Fatal(err)
		}
		// A save killed after writing parts of slot b, before the head.
		for i := 1; i <= 9; i++ {
			if err := gokeyring.Set(k.KeyringService(), fmt.Sprintf("%s-b%d", id, i), "stale"); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := keyringSessions(k.Dir, 0).Load(testKey()); err != nil || got.RefreshToken != "rt-old" {
			t.Fatalf("the old session is not intact: %v", err)
		}
		if err := k.Save(bigEntry("new")); err != nil {
			t.Fatal(err)
		}
		if got, err := keyringSessions(k.Dir, 0).Load(testKey()); err != nil || got.RefreshToken != "rt-new" {
			t.Fatalf("new session: %v", err)
		}
		for _, a := range kr.Accounts(t, k.KeyringService()) {
			if v, _ := kr.Lookup(t, k.KeyringService(), a); v == "stale" || strings.Contains(a, "-a") {
				t.Errorf("item %s left behind", a)
			}
		}
		if err := k.Remove(id); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a damaged entry is a miss with a reason", func(t *testing.T) {
		k := keyringSessions(filepath.Join(t.TempDir(), "c"), 2048)
		if err := k.Save(bigEntry("d")); err != nil {
			t.Fatal(err)
		}
		if err := gokeyring.Set(k.KeyringService(), id+"-a2", "tampered"); err != nil {
			t.Fatal(err)
		}
		_, err := keyringSessions(k.Dir, 0).Load(testKey())
		var bad *BadKeyringEntryError
		if !errors.As(err, &bad) || !errors.Is(err, ErrNotFound) || !strings.Contains(bad.Reason, "do not match") {
			t.Fatalf("Load = %v", err)
		}
		if l, _ := keyringSessions(k.Dir, 0).List(); len(l) != 1 || len(l[0].Copies) != 1 || l[0].Copies[0].Err == nil || l[0].Copies[0].Record == nil {
			t.Errorf("List = %+v", l)
		}
		if err := k.Save(entry()); err != nil {
			t.Fatal(err)
		}
		if _, err := keyringSessions(k.Dir, 0).Load(testKey()); err != nil {
			t.Errorf("a save did not replace the damaged entry: %v", err)
		}
		k.Remove(id)
	})

	t.Run("a locked keyring: one warning, the session on disk, back to the keyring once unlocked", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "c")
		first := bigEntry("before-lock")
		if err := (keyringSessions(dir, 0)).Save(first); err != nil {
			t.Fatal(err)
		}
		kr.Lock(t)
		var warnings []string
		k := keyringSessions(dir, 0)
		k.Warn = func(msg string) { warnings = append(warnings, msg) }
		locked := bigEntry("while-locked")
		locked.IssuedAt = first.IssuedAt.Add(time.Minute)
		start := time.Now()
		if err := k.Save(locked); err != nil {
			t.Fatal(err)
		}
		if err := k.Save(locked); err != nil {
			t.Fatal(err)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], k.disk().Path(id)) || !strings.Contains(warnings[0], "locked") {
			t.Errorf("warnings %q, want one naming the file and the locked keyring", warnings)
		}
		t.Logf("two saves to a locked keyring took %s", time.Since(start))
		if got, err := k.disk().Load(testKey()); err != nil || got.RefreshToken != "rt-while-locked" {
			t.Fatalf("the fresh session is not on disk: %v", err)
		}
		if err := keyringSessions(k.Dir, 0).CheckKeyring(); err == nil {
			t.Errorf("Check says a locked keyring can be used")
		}
		// Read while locked: the disk file.
		if got, err := keyringSessions(k.Dir, 0).Load(testKey()); err != nil || got.RefreshToken != "rt-while-locked" {
			t.Fatalf("Load while locked: %v", err)
		}

		kr.Unlock(t)
		// The keyring still holds the older session: the newer disk one wins.
		if got, err := keyringSessions(k.Dir, 0).Load(testKey()); err != nil || got.RefreshToken != "rt-while-locked" {
			t.Fatalf("Load after unlock: %v", err)
		}
		after := bigEntry("after-unlock")
		after.IssuedAt = locked.IssuedAt.Add(time.Minute)
		if err := keyringSessions(k.Dir, 0).Save(after); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(k.disk().Path(id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the disk copy was not removed once the keyring took the session: %v", err)
		}
		noTokensOnDisk(t, dir, locked)
		noTokensOnDisk(t, dir, after)
		if got, err := keyringSessions(k.Dir, 0).Load(testKey()); err != nil || got.RefreshToken != "rt-after-unlock" {
			t.Fatalf("Load: %v", err)
		}
		k.Remove(id)
	})

	t.Run("a Secret Service that never answers costs one timeout, then disk", func(t *testing.T) {
		thaw := kr.Freeze(t)
		defer thaw()
		var warned int
		k := keyringSessions(filepath.Join(t.TempDir(), "c"), 0)
		k.KeyringTimeout = time.Second
		k.keyring().timeout = time.Second
		k.Warn = func(string) { warned++ }
		start := time.Now()
		if _, err := k.Load(testKey()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load = %v", err)
		}
		if err := k.Save(entry()); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if took > 20*time.Second {
			t.Errorf("load and save took %s with a 1 s keyring timeout", took)
		}
		if warned != 1 {
			t.Errorf("%d warnings", warned)
		}
		if _, err := k.disk().Load(testKey()); err != nil {
			t.Errorf("not saved on disk: %v", err)
		}
	})

	t.Run("no D-Bus session bus: go-keyring is not called, disk", func(t *testing.T) {
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
		if busReachable() == nil {
			t.Skip("this machine has a session bus socket in /run/user; the plugin tests cover a bus address that leads nowhere")
		}
		// godbus would run dbus-launch here, which starts a bus that
		// outlives the run; the reason shows that Keyring stopped first.
		var reason error
		k := keyringSessions(filepath.Join(t.TempDir(), "c"), 0)
		k.Warn = func(msg string) { reason = errors.New(msg) }
		if err := k.Save(entry()); err != nil {
			t.Fatal(err)
		}
		if reason == nil || !strings.Contains(reason.Error(), "no D-Bus session bus") {
			t.Errorf("warning reason %v", reason)
		}
		if _, err := k.disk().Load(testKey()); err != nil {
			t.Errorf("not saved on disk: %v", err)
		}
	})
}

// keyringSessions is the keyring storage of a cache directory, with items
// of chunk bytes (0: the platform's size).
func keyringSessions(dir string, chunk int) *Sessions {
	s := &Sessions{Dir: dir, Storage: Keyring}
	s.keyring().chunk = chunk
	return s
}
