//go:build unix

package cache

import (
	"bufio"
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

// TestKillDuringSave kills a process that saves entries in a loop with
// SIGKILL at random moments, many times, and checks after each kill that
// the cache file is a whole entry: never corrupt, never partial.
func TestKillDuringSave(t *testing.T) {
	if dir := os.Getenv(killWriterEnv); dir != "" {
		killWriter(dir)
		return
	}
	// At least this many kills, and at least minMid of them in the middle
	// of a write (between creating the temporary file and renaming it,
	// about a fifth of the writer's time).
	kills, minMid := 20, 3
	if os.Getenv("DEVICE_LOGIN_STRESS") == "1" {
		kills, minMid = 200, 20
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d", seed)

	s := Store{Dir: filepath.Join(t.TempDir(), "cache")}
	path := s.Path(testKey().ID())
	midWrite, i := 0, 0
	for ; (i < kills || midWrite < minMid) && i < 5*kills; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringSave$", "-test.count=1")
		cmd.Env = append(os.Environ(), killWriterEnv+"="+s.Dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The writer says "ready" after its first save, then loops; a
		// kill at a random moment after that lands anywhere in Save.
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("kill %d: the writer did not start: %q %v", i, line, err)
		}
		time.Sleep(time.Duration(rng.IntN(40_000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: the writer ended otherwise: %v", i, err)
		}

		got, err := s.Load(testKey())
		if err != nil {
			data, _ := os.ReadFile(path)
			t.Fatalf("kill %d: Load after SIGKILL: %v (file of %d bytes)", i, err, len(data))
		}
		if !intact(got) {
			t.Fatalf("kill %d: the loaded entry is a mixture or a fragment", i)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("kill %d: file mode %v %v", i, st.Mode(), err)
		}
		// A temporary file left behind means the kill hit a write in
		// progress; remove it so the next kill is counted afresh.
		temps, _ := filepath.Glob(filepath.Join(s.Dir, ".tmp-*"))
		if len(temps) > 0 {
			midWrite++
		}
		for _, p := range temps {
			os.Remove(p)
		}
	}
	t.Logf("%d SIGKILLs survived (%d of them hit a write in progress): the cache file was a whole entry every time", i, midWrite)
	if midWrite < minMid {
		t.Errorf("only %d of %d kills hit a write in progress; the test proved too little", midWrite, i)
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
