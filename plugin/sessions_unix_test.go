//go:build unix

package plugin_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// Files that are not regular files where the plugin expects its own: FIFOs.

// TestNonRegularFilesAreRefusedAtOnce (issue 12, defect 8): a FIFO (or a
// directory) where the plugin expects a session, a lock, a failure note
// or a keyring index record is refused at once with a clear message; it
// never blocks.
func TestNonRegularFilesAreRefusedAtOnce(t *testing.T) {
	t.Parallel()
	p := providertest.StartZitadel(t, providertest.Options{AutoApprove: true})
	id := keyID(p.Issuer(), p.ClientID())
	for _, name := range []string{id + ".json", id + ".lock", id + ".failed", id + ".keyring"} {
		t.Run(name, func(t *testing.T) {
			s := newSession(t, p)
			if err := os.MkdirAll(s.cacheDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(filepath.Join(s.cacheDir, name), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx := testContext(t, 30*time.Second)
			for _, args := range [][]string{{"status", "--cache-dir=" + s.cacheDir}, s.args("get-token", "--device-login=always")} {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				r := runPlugin(t, rctx, invocation{args: args})
				cancel()
				if r.exit < 0 || r.took > 5*time.Second {
					t.Fatalf("%s blocked on a FIFO (killed after %s)", args[0], r.took)
				}
				out := r.stderr + r.stdout
				if args[0] == "get-token" && (strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".lock")) || args[0] == "status" && strings.HasSuffix(name, ".json") {
					if !strings.Contains(out, "not a regular file") {
						t.Errorf("%s does not say what is wrong:\n%s", args[0], out)
					}
				}
			}
		})
	}
}
