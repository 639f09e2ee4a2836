//go:build unix

package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killWriterEnv, when set in the environment, makes TestKillDuringSave a
// writer: it saves entries into that directory in a loop until killed.
const killWriterEnv = "DEVICE_LOGIN_KILL_WRITER_DIR"

// killEntry is one of the two entries the writer alternates: a big one
// (about 600 KB, so a write takes a while) and a small one. Each carries
// its kind in every field, so a mixture of two writes cannot pass as valid.
func killEntry(big bool) *Entry {
	e := entry()
	if big {
		e.AccessToken = strings.Repeat("B", 300<<10)
		e.RefreshToken = strings.Repeat("b", 300<<10)
	} else {
		e.AccessToken, e.RefreshToken = "small-access", "small-refresh"
	}
	return e
}

// intact reports whether e is exactly one of the two writer entries.
func intact(e *Entry) bool {
	for _, big := range []bool{true, false} {
		w := killEntry(big)
		if e.AccessToken == w.AccessToken && e.RefreshToken == w.RefreshToken && e.Expiry.Equal(w.Expiry) && e.TokenEndpoint == w.TokenEndpoint {
			return true
		}
	}
	return false
}

// TestKillDuringSave kills a process that saves entries in a loop, many
// times, each time at a chosen system call of a save (a write, the sync,
// the rename, or the creation of the temporary file) with strace's fault
// injection, so that every kill lands where a save can be torn. After each
// kill the session file must be a whole entry, never a part, and what the
// kill left must be recovered (the newest whole entry put in place) or
// removed under the lock.
func TestKillDuringSave(t *testing.T) {
	if dir := os.Getenv(killWriterEnv); dir != "" {
		killWriter(dir)
		return
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatalf("strace is needed to aim the kills: apt-get install strace (%v)", err)
	}
	kills := 20
	if os.Getenv("DEVICE_LOGIN_STRESS") == "1" {
		kills = 200
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d", seed)

	s := Store{Dir: filepath.Join(t.TempDir(), "cache")}
	path := s.Path(testKey().ID())
	// A session is there before the first writer starts, so that a kill
	// before a writer's first save leaves a whole one too.
	if err := s.Save(killEntry(false)); err != nil {
		t.Fatal(err)
	}
	// Go writes the session with pwrite64 (WriteAt) and renames with
	// renameat; the sets name every variant so that each kill triggers.
	syscalls := []string{"write,pwrite64", "fsync", "rename,renameat,renameat2", "openat"}
	midWrite := 0
	for i := 0; i < kills; i++ {
		call := syscalls[rng.IntN(len(syscalls))]
		when := 3 + rng.IntN(12)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, strace, "-f", "-qq", "-o", "/dev/null", "-e", fmt.Sprintf("inject=%s:signal=SIGKILL:when=%d", call, when),
			os.Args[0], "-test.run=^TestKillDuringSave$", "-test.count=1")
		cmd.Env = append(os.Environ(), killWriterEnv+"="+s.Dir)
		out, err := cmd.CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGKILL) && !strings.Contains(ee.String(), "killed") {
			t.Fatalf("kill %d (%s #%d): the writer ended otherwise (%v; timed out %t):\n%s", i, call, when, err, ctx.Err() != nil, out)
		}

		got, err := s.Load(testKey())
		if err != nil {
			data, _ := os.ReadFile(path)
			t.Fatalf("kill %d (%s #%d): Load after SIGKILL: %v (file of %d bytes)", i, call, when, err, len(data))
		}
		if !intact(got) {
			t.Fatalf("kill %d (%s #%d): the loaded entry is a mixture or a fragment", i, call, when)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("kill %d: file mode %v %v", i, st.Mode(), err)
		}
		// A temporary file left behind means the kill hit a save in
		// progress; recovery (under the lock, by the next process) puts
		// a whole one in place or removes it.
		temps, _ := filepath.Glob(filepath.Join(s.Dir, ".tmp-*"))
		if len(temps) > 0 {
			midWrite++
		}
		if _, err := s.recover(testKey().ID()); err != nil {
			t.Fatalf("kill %d: recover: %v", i, err)
		}
		if left, _ := filepath.Glob(filepath.Join(s.Dir, ".tmp-*")); len(left) != 0 {
			t.Fatalf("kill %d: recovery left %v", i, left)
		}
		if got, err := s.Load(testKey()); err != nil || !intact(got) {
			t.Fatalf("kill %d: after recovery: %v", i, err)
		}
	}
	t.Logf("%d SIGKILLs aimed at the system calls of a save survived (%d of them left a save in progress): the cache file was a whole entry every time", kills, midWrite)
	if midWrite < kills/2 {
		t.Errorf("only %d of %d aimed kills hit a save in progress; the test proved too little", midWrite, kills)
	}
}

// killWriter saves alternating big and small entries into dir until it is
// killed.
func killWriter(dir string) {
	s := Store{Dir: dir}
	big := false
	for i := 0; ; i++ {
		big = !big
		if err := s.Save(killEntry(big)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if i == 0 {
			fmt.Println("ready")
		}
	}
}
