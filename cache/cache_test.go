package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func testKey() Key {
	return Key{Issuer: "https://auth.example.com/", ClientID: "kubectl", Scopes: []string{"openid", "offline_access", "openid"}, Token: "access_token"}
}

// The hashed form is a promise to users (docs/cache.md shows how to
// recompute this value with printf and sha256sum): if this value changes, every
// cached session is lost at upgrade. Never update it without a migration.
func TestKeyIDIsStableAcrossReleases(t *testing.T) {
	const want = "ff4cef92757e35eb7d5697e304c8ad46"
	if got := testKey().ID(); got != want {
		t.Fatalf("Key.ID() = %s, want %s: the documented key form changed", got, want)
	}
}

func TestKeyIDIgnoresOrderAndTrailingSlash(t *testing.T) {
	a := testKey()
	b := Key{Issuer: "https://auth.example.com", ClientID: "kubectl", Scopes: []string{"offline_access", "openid"}, Token: "access_token"}
	if a.ID() != b.ID() {
		t.Errorf("same login, different IDs")
	}
	for name, k := range map[string]Key{
		"issuer":  {Issuer: "https://other.example.com", ClientID: "kubectl", Scopes: b.Scopes, Token: "access_token"},
		"client":  {Issuer: b.Issuer, ClientID: "other", Scopes: b.Scopes, Token: "access_token"},
		"scopes":  {Issuer: b.Issuer, ClientID: "kubectl", Scopes: []string{"openid"}, Token: "access_token"},
		"params":  {Issuer: b.Issuer, ClientID: "kubectl", Scopes: b.Scopes, ExtraParams: []string{"audience=k8s"}, Token: "access_token"},
		"token":   {Issuer: b.Issuer, ClientID: "kubectl", Scopes: b.Scopes, Token: "id_token"},
		"framing": {Issuer: b.Issuer, ClientID: "kubectl\",\"x", Scopes: b.Scopes, Token: "access_token"},
	} {
		if k.ID() == b.ID() {
			t.Errorf("a different %s gives the same ID", name)
		}
	}
}

func entry() *Entry {
	return &Entry{Key: testKey().Normalize(), TokenEndpoint: "https://auth.example.com/token", AccessToken: "at", RefreshToken: "rt",
		Expiry: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), IssuedAt: time.Date(2029, 12, 31, 23, 0, 0, 0, time.UTC)}
}

func TestSaveLoadRoundTripWithPrivateModes(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "sessions")}
	if _, err := s.Load(testKey()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: %v", err)
	}
	if err := s.Save(entry()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(testKey())
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "at" || got.RefreshToken != "rt" || !got.Expiry.Equal(entry().Expiry) {
		t.Errorf("loaded %+v", got)
	}
	if runtime.GOOS == "windows" {
		return
	}
	for path, want := range map[string]os.FileMode{s.Dir: 0o700, s.Path(testKey().ID()): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %#o, want %#o", path, st.Mode().Perm(), want)
		}
	}
	des, _ := os.ReadDir(s.Dir)
	if len(des) != 1 {
		t.Errorf("left behind: %v", des)
	}
}

func TestUnusableFilesAreMissesWithAReason(t *testing.T) {
	for name, tc := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"not json":      {"\x00\x01garbage", 0o600, "not valid JSON"},
		"truncated":     {`{"format":"kubectl-device-login/session/v1","key":{"iss`, 0o600, "not valid JSON"},
		"foreign":       {`{"format":"something-else","access_token":"x"}`, 0o600, `format "something-else"`},
		"no format":     {`{"access_token":"x"}`, 0o600, `format ""`},
		"other key":     {`{"format":"kubectl-device-login/session/v1","key":{"issuer":"https://x","client_id":"y","scopes":[],"token":"access_token"}}`, 0o600, "belongs to another login"},
		"world-read":    {`{}`, 0o644, "let other users read"},
		"group-write":   {`{}`, 0o620, "let other users read or change"},
		"huge":          {strings.Repeat(" ", maxFileSize+10), 0o600, "larger than 1 MiB"},
		"control chars": {`{"format":"\u001b[2J"}`, 0o600, `format "\x1b[2J"`},
	} {
		t.Run(name, func(t *testing.T) {
			if runtime.GOOS == "windows" && strings.Contains(name, "-") {
				t.Skip("mode bits mean nothing on Windows")
			}
			s := Store{Dir: t.TempDir()}
			p := s.Path(testKey().ID())
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, tc.mode)
			_, err := s.Load(testKey())
			var bad *BadFileError
			if !errors.As(err, &bad) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want a BadFileError mentioning %q", err, tc.want)
			}
			if strings.ContainsRune(err.Error(), 0x1b) {
				t.Errorf("the reason carries a raw escape: %q", err)
			}
			// A good save replaces the bad file.
			if err := s.Save(entry()); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Load(testKey()); err != nil {
				t.Fatalf("after save: %v", err)
			}
		})
	}
}

func TestDirectoryChecks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix modes")
	}
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if err := (Store{Dir: open}).Save(entry()); err == nil || !strings.Contains(err.Error(), "can be written by other users") {
		t.Errorf("world-writable dir: %v", err)
	}
	readable := filepath.Join(base, "readable")
	os.Mkdir(readable, 0o755)
	if err := (Store{Dir: readable}).Save(entry()); err != nil {
		t.Errorf("readable dir: %v", err)
	}
	if st, _ := os.Stat(readable); st.Mode().Perm() != 0o700 {
		t.Errorf("readable dir not tightened: %#o", st.Mode().Perm())
	}
	link := filepath.Join(base, "link")
	os.Symlink(readable, link)
	if err := (Store{Dir: link}).Save(entry()); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlinked dir: %v", err)
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	if err := (Store{Dir: file}).Save(entry()); err == nil {
		t.Errorf("a file as the directory was accepted")
	}
}

func TestSaveFailureLeavesTheOldEntry(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("needs a read-only directory, which root ignores")
	}
	s := Store{Dir: t.TempDir()}
	if err := s.Save(entry()); err != nil {
		t.Fatal(err)
	}
	os.Chmod(s.Dir, 0o500)
	defer os.Chmod(s.Dir, 0o700)
	e := entry()
	e.AccessToken = "new"
	if err := s.Save(e); err == nil {
		t.Fatal("save into a read-only directory succeeded")
	}
	got, err := s.Load(testKey())
	if err != nil || got.AccessToken != "at" {
		t.Errorf("old entry lost: %+v %v", got, err)
	}
}

func TestListReportsGoodAndBadFiles(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if err := s.Save(entry()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.Dir, "0123.json"), []byte("nope"), 0o600)
	os.WriteFile(filepath.Join(s.Dir, "x.lock"), nil, 0o600)
	got, err := (&Sessions{Dir: s.Dir}).List()
	if err != nil || len(got) != 2 {
		t.Fatalf("List = %v, %v", got, err)
	}
	var good, bad int
	for _, l := range got {
		if len(l.Copies) != 1 {
			t.Fatalf("%d copies of %s", len(l.Copies), l.ID)
		}
		if l.Copies[0].Err != nil {
			bad++
		} else if l.Copies[0].Entry.Key.ClientID == "kubectl" {
			good++
		}
	}
	if good != 1 || bad != 1 {
		t.Errorf("good %d bad %d", good, bad)
	}
}

func TestLockExcludesAndReportsWaiting(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	id := testKey().ID()
	lock, err := s.Lock(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := s.Lock(ctx, id, func() { waited = true }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v", err)
	}
	if !waited {
		t.Errorf("onWait was not called")
	}
	done := make(chan error, 1)
	go func() {
		l, err := s.Lock(context.Background(), id, nil)
		if err == nil {
			l.Release()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	lock.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lock was not handed over after unlock")
	}
}
