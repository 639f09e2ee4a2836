package status_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/status"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// TestCacheDirIsSanitized: the cache directory is a path a person or a
// script names, and status prints it on the terminal: an escape sequence
// in it must not reach the terminal.
func TestCacheDirIsSanitized(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "evil\x1b]0;title\a\x1b[2J")
	s, err := plugin.ResolveCache(plugin.Options{CacheDir: dir, TokenCache: plugin.TokenCacheDisk})
	if err != nil {
		t.Fatal(err)
	}
	var out, stderr bytes.Buffer
	if err := status.Status(context.Background(), s, terminal.New(&stderr, terminal.Options{}), &out, "text"); err != nil {
		t.Fatal(err)
	}
	want := "No sessions in " + terminal.Sanitize(dir, 500) + ".\n"
	if out.String() != want || stderr.Len() > 0 {
		t.Errorf("got %q, stderr %q; want %q", out.String(), stderr.String(), want)
	}
}
