//go:build unix

package cache

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A file a person names (a CA, a client secret) is often a link: a
// Kubernetes secret volume links ca.crt to ..data/ca.crt, and
// /etc/ssl/certs is links. ReadRegularFile follows it to the regular file;
// only session files, which the plugin itself writes, refuse a link.
func TestReadRegularFileFollowsLinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "..data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "..data", "ca.crt"), []byte("PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "ca.crt")
	if err := os.Symlink(filepath.Join("..data", "ca.crt"), link); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadRegularFile(link, 1<<10); err != nil || string(data) != "PEM" {
		t.Errorf("ReadRegularFile through a link: %q, %v", data, err)
	}
	if _, err := readPrivate(link, 1<<10); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("readPrivate through a link: %v, want it refused as a symbolic link", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fifo, filepath.Join(dir, "to-fifo")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRegularFile(filepath.Join(dir, "to-fifo"), 1<<10); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadRegularFile through a link to a FIFO: %v, want it refused at once", err)
	}
}
