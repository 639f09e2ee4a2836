package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
)

// procRun is one finished process.
type procRun struct {
	stdout, stderr string
	exit           int
	wall           time.Duration
	cpu            time.Duration // user + system, from the kernel's rusage
}

// runOnce runs bin with args and env and waits for it.
func runOnce(bin string, args, env []string) (procRun, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := procRun{wall: time.Since(start), stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.exit = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("running %s: %v", bin, err)
	}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, nil
}

// stats summarise a sample of timings or sizes.
type stats struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	P10    float64 `json:"p10"`
	P90    float64 `json:"p90"`
	Mean   float64 `json:"mean"`
	Stddev float64 `json:"stddev"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func summarize(xs []float64) stats {
	if len(xs) == 0 {
		return stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	mean := sum / float64(len(s))
	var sq float64
	for _, x := range s {
		sq += (x - mean) * (x - mean)
	}
	sd := 0.0
	if len(s) > 1 {
		sd = math.Sqrt(sq / float64(len(s)-1))
	}
	return stats{N: len(s), Median: quantile(s, 0.5), P10: quantile(s, 0.1), P90: quantile(s, 0.9),
		Mean: mean, Stddev: sd, Min: s[0], Max: s[len(s)-1]}
}

// quantile of sorted data, interpolating between neighbours.
func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// program is one command line under test.
type program struct {
	name string
	bin  string
	args []string
}

// commandLine is the program and its arguments, quoted for hyperfine.
func (p program) commandLine() string {
	return shellQuote(p.bin) + " " + p.argLine()
}

// argLine is the arguments alone, quoted.
func (p program) argLine() string {
	parts := make([]string, 0, len(p.args))
	for _, a := range p.args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// latencies runs hyperfine without a shell over the programs, in rounds
// whose order rotates so that a change in the machine's load falls on all
// of them alike, and returns each program's wall times in milliseconds.
func latencies(ctx context.Context, progs []program, rounds, runs, warmup int, env []string, outDir string) (map[string][]float64, error) {
	times := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		order := append(slices.Clone(progs[r%len(progs):]), progs[:r%len(progs)]...)
		file := filepath.Join(outDir, fmt.Sprintf("hyperfine-round%d.json", r+1))
		args := []string{"-N", "--style", "none", "--output", "pipe", "--runs", strconv.Itoa(runs), "--warmup", strconv.Itoa(warmup), "--export-json", file}
		for _, p := range order {
			args = append(args, "--command-name", p.name, p.commandLine())
		}
		cmd := exec.CommandContext(ctx, "hyperfine", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("hyperfine: %v\n%s", err, out)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Results []struct {
				Command   string    `json:"command"`
				Times     []float64 `json:"times"`
				ExitCodes []*int    `json:"exit_codes"`
			} `json:"results"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("reading %s: %v", file, err)
		}
		for _, res := range doc.Results {
			for _, c := range res.ExitCodes {
				if c == nil || *c != 0 {
					return nil, fmt.Errorf("%s failed during the hyperfine run", res.Command)
				}
			}
			for _, t := range res.Times {
				times[res.Command] = append(times[res.Command], t*1000)
			}
		}
	}
	return times, nil
}

// peakRSS runs the program n times under GNU time and returns the peak
// resident set sizes in KiB. GNU time forks (it does not share its memory
// with the child as Go's os/exec does, which would make the kernel report
// the parent's own peak), so the figure is the child's own.
func peakRSS(ctx context.Context, p program, n int, env []string, outDir string) ([]float64, error) {
	file := filepath.Join(outDir, "time-"+p.name+".txt")
	var out []float64
	for i := 0; i < n; i++ {
		args := append([]string{"-f", "%M", "-o", file, "--", p.bin}, p.args...)
		cmd := exec.CommandContext(ctx, "/usr/bin/time", args...)
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("/usr/bin/time %s: %v\n%s", p.name, err, b)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		kib, err := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
		if err != nil {
			return nil, fmt.Errorf("GNU time printed %q", data)
		}
		out = append(out, kib)
	}
	return out, nil
}

// storm is one burst of parallel cache hits.
type storm struct {
	wall    time.Duration
	cpu     []time.Duration // per process
	failed  int
	message string // the first failure
}

// hitStorm starts n cache hits at once while this process holds the
// session's lock: a hit that took the lock would wait until ctx ends and
// count as failed. It returns when all have exited.
func hitStorm(ctx context.Context, bin string, s *hitSession, n int, env []string) (storm, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	lock, err := cache.Store{Dir: s.dir}.Lock(lctx, s.key.ID(), nil)
	cancel()
	if err != nil {
		return storm{}, fmt.Errorf("taking the session's lock for the storm: %v", err)
	}
	defer lock.Release()
	hctx, cancelHits := context.WithTimeout(ctx, time.Minute)
	defer cancelHits()
	type outcome struct {
		cpu time.Duration
		err error
	}
	outcomes := make([]outcome, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		cmd := exec.CommandContext(hctx, bin, s.args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			return storm{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			o := &outcomes[i]
			if cmd.ProcessState != nil {
				o.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			switch {
			case err != nil:
				o.err = fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
			case !strings.Contains(stdout.String(), s.entry.AccessToken):
				o.err = fmt.Errorf("printed no credential with the cached token")
			}
		}()
	}
	wg.Wait()
	st := storm{wall: time.Since(start)}
	for _, o := range outcomes {
		st.cpu = append(st.cpu, o.cpu)
		if o.err != nil {
			if st.failed == 0 {
				st.message = o.err.Error()
			}
			st.failed++
		}
	}
	return st, nil
}

// serialHits runs n cache hits one after the other, for comparison with a
// storm of n.
func serialHits(bin string, s *hitSession, n int, env []string) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < n; i++ {
		r, err := runOnce(bin, s.args, env)
		if err != nil {
			return 0, err
		}
		if r.exit != 0 {
			return 0, fmt.Errorf("a cache hit exited %d: %s", r.exit, r.stderr)
		}
	}
	return time.Since(start), nil
}

// syscallCounts are the system calls one process made, by name.
type syscallCounts map[string]int

func (c syscallCounts) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// straceCount runs the program under strace -f -c and returns the calls
// it counted.
func straceCount(ctx context.Context, p program, env []string, outDir string) (syscallCounts, error) {
	file := filepath.Join(outDir, "strace-count-"+p.name+".txt")
	args := append([]string{"-f", "-c", "-S", "calls", "-o", file, "--", p.bin}, p.args...)
	cmd := exec.CommandContext(ctx, "strace", args...)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("strace %s: %v\n%s", p.name, err, b)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseStraceSummary(string(data))
}

// parseStraceSummary reads the table strace -c prints: % time, seconds,
// usecs/call, calls, [errors,] syscall.
func parseStraceSummary(s string) (syscallCounts, error) {
	counts := syscallCounts{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[len(f)-1] == "total" || f[len(f)-1] == "syscall" {
			continue
		}
		if _, err := strconv.ParseFloat(f[0], 64); err != nil {
			continue
		}
		calls, err := strconv.Atoi(f[3])
		if err != nil {
			return nil, fmt.Errorf("strace summary line %q: %v", line, err)
		}
		counts[f[len(f)-1]] += calls
	}
	if len(counts) == 0 {
		return nil, fmt.Errorf("no system calls in the strace summary:\n%s", s)
	}
	return counts, nil
}

// traceEvents runs the program under strace -f and returns the calls that
// touch files, descriptors other than the runtime's, or the terminal, in
// order, paths included: the work a cache hit does beyond starting Go.
func traceEvents(ctx context.Context, p program, env []string, outDir string) ([]string, error) {
	file := filepath.Join(outDir, "strace-trace-"+p.name+".txt")
	args := append([]string{"-f", "-qq", "-s", "120", "-e", "trace=%file,%desc,%network,flock,getuid,geteuid,getppid", "-o", file, "--", p.bin}, p.args...)
	cmd := exec.CommandContext(ctx, "strace", args...)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("strace %s: %v\n%s", p.name, err, b)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseTrace(string(data)), nil
}

// parseTrace drops the process ID column, signals and exits, the runtime's
// anonymous memory mappings and network-poller waits, and joins calls that
// another thread interrupted ("<unfinished ...>" and "<... resumed>"),
// keeping one line per call.
func parseTrace(s string) []string {
	var out []string
	pending := map[string]int{} // thread → index in out of its unfinished call
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		tid := ""
		if id, rest, ok := strings.Cut(line, " "); ok {
			if _, err := strconv.Atoi(id); err == nil {
				tid, line = id, strings.TrimSpace(rest)
			}
		}
		if strings.HasPrefix(line, "<... ") {
			if i, ok := pending[tid]; ok {
				_, rest, _ := strings.Cut(line, "resumed>")
				if strings.HasSuffix(out[i], ",") {
					out[i] += " "
				}
				out[i] += strings.TrimSpace(rest)
				delete(pending, tid)
			}
			continue
		}
		if strings.HasPrefix(line, "+++") || strings.HasPrefix(line, "---") || strings.HasPrefix(line, "epoll_pwait(") ||
			strings.HasPrefix(line, "mmap(") && strings.Contains(line, "MAP_ANONYMOUS") {
			continue
		}
		if before, ok := strings.CutSuffix(line, "<unfinished ...>"); ok {
			pending[tid] = len(out)
			line = strings.TrimSpace(before)
		}
		out = append(out, line)
	}
	return out
}

// hostLoad is /proc/loadavg's three averages.
func hostLoad() [3]float64 {
	var l [3]float64
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(data))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

// ownWorkResult is what a cache hit costs beyond starting the same binary:
// per pair of runs, the hit's time minus that of `version`, which loads
// and initializes the same program and prints one line.
type ownWorkResult struct {
	Wall stats `json:"wall_ms"`
	CPU  stats `json:"cpu_ms"`
}

// ownWork runs a cache hit and `version` one after the other n times
// (after warmup pairs) and summarizes the differences of each pair. Runs
// in alternation see the same machine, so the difference is steadier than
// that of two medians taken a minute apart.
func ownWork(ctx context.Context, bin string, hitArgs []string, warmup, n int, env []string) (*ownWorkResult, error) {
	var wall, cpu []float64
	for i := 0; i < warmup+n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := runOnce(bin, hitArgs, env)
		if err != nil {
			return nil, err
		}
		v, err := runOnce(bin, []string{"version"}, env)
		if err != nil {
			return nil, err
		}
		if h.exit != 0 || v.exit != 0 {
			return nil, fmt.Errorf("the hit exited %d and version %d while measuring the hit's own work", h.exit, v.exit)
		}
		if i >= warmup {
			wall = append(wall, ms(h.wall-v.wall))
			cpu = append(cpu, ms(h.cpu-v.cpu))
		}
	}
	return &ownWorkResult{Wall: summarize(wall), CPU: summarize(cpu)}, nil
}
