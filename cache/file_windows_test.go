//go:build windows

package cache

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReaderDoesNotBlockRenameOrDelete (issue 14, a suspicion about
// Windows): a cache hit reads the session file without a lock while the
// refresher renames a new one over it and logout deletes it. Files opened
// with os.Open lack FILE_SHARE_DELETE, which would make both fail with a
// sharing violation; readRegular shares deletion. The test holds a file
// open the way readRegular does and renames and deletes under it.
func TestReaderDoesNotBlockRenameOrDelete(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "cache")}
	if err := s.Save(entry()); err != nil {
		t.Fatal(err)
	}
	path := s.Path(testKey().ID())
	held := make(chan struct{})
	release := make(chan struct{})
	go func() {
		// readRegular closes its handle before returning; hold one open
		// with the same sharing for the length of the save.
		h, err := openShared(path, true)
		if err != nil {
			t.Error(err)
			close(held)
			return
		}
		close(held)
		<-release
		h.Close()
	}()
	<-held
	e := entry()
	e.AccessToken = "newer"
	if err := s.Save(e); err != nil {
		t.Errorf("a save while a reader has the file open: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Errorf("a delete while a reader has the file open: %v", err)
	}
	close(release)
	// The ACL check accepts what the plugin wrote.
	if err := s.Save(entry()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(testKey()); err != nil {
		t.Errorf("reading back a session the plugin wrote: %v", err)
	}
}
