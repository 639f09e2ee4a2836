//go:build unix

package cache

import (
	"bytes"
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
// times, each time at a chosen system call of a save (a write, a sync,
// the rename) with strace's fault
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
	// A write or a sync is aimed past the ones a process makes while it
	// starts (the first save comes early); a rename comes only in a save.
	aims := []struct {
		calls      string
		first, few int
	}{{"write,pwrite64", 6, 20}, {"fsync", 2, 12}, {"rename,renameat,renameat2", 1, 12}}
	midWrite := 0
	for i := 0; i < kills; i++ {
		aim := aims[rng.IntN(len(aims))]
		call, when := aim.calls, aim.first+rng.IntN(aim.few)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, strace, "-f", "-qq", "-o", "/dev/null", "-e", fmt.Sprintf("inject=%s:signal=SIGKILL:when=%d", call, when),
			os.Args[0], "-test.run=^TestKillDuringSave$", "-test.count=1")
		cmd.Env = append(os.Environ(), killWriterEnv+"="+s.Dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() == context.DeadlineExceeded
		cancel()
		// strace itself sometimes fails when the SIGKILL it injected
		// races its tracing of the dying threads ("ptrace(PTRACE_LISTEN,
		// …): Input/output error"); whatever it left is killed here, and
		// the checks below hold for a kill at any moment anyway.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		var ee *exec.ExitError
		switch {
		case timedOut:
			t.Fatalf("kill %d (%s #%d): the injected kill never came:\n%s", i, call, when, out)
		case errors.As(err, &ee) && (ee.ExitCode() == 128+int(syscall.SIGKILL) || strings.Contains(ee.String(), "killed")):
		case bytes.Contains(out, []byte("ptrace(")):
			t.Logf("kill %d (%s #%d): strace failed (%s); the writer was killed by the test instead", i, call, when, bytes.TrimSpace(out))
		default:
			t.Fatalf("kill %d (%s #%d): the writer ended otherwise (%v):\n%s", i, call, when, err, out)
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
