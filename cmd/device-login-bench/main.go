// Command device-login-bench is `make bench`: it measures what
// kubectl-device-login costs the people who run it — the cache hit that
// sits in front of every kubectl command, its memory and binary size, a
// refresh, stampedes of processes on an expired session, a storm of cache
// hits and the login moment — prints them as a table next to their goals,
// and writes them as JSON (bin/bench/results.json) for comparing commits.
//
// The cache hit is timed with hyperfine (no shell) next to two floors it
// builds itself from testdata/floors: a hello world and a program that
// links net/http, golang.org/x/oauth2 and github.com/spf13/pflag and does
// nothing with them. Peak memory comes from GNU time, system calls from
// strace. The scenarios that need a provider are `go test -bench`
// benchmarks in package plugin (bench_test.go) against npm oidc-provider
// under Node; allocations come from benchmarks in the plugin, cache and
// command packages. Those in-process benchmarks measure the source tree
// the command runs in, the others the -plugin binary: build it from the
// same tree (make bench does). Timed binaries are installed copies (see
// install).
//
// It installs nothing: hyperfine, strace and GNU time come from Debian
// (apt-get install hyperfine strace time), Node's packages from
// `make node-deps`. It is a development tool; the plugin never links it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// plan is how much of everything a run measures.
type plan struct {
	Quick          bool   `json:"quick"`
	HitRounds      int    `json:"hit_rounds"`
	HitRuns        int    `json:"hit_runs_per_round"`
	HitWarmup      int    `json:"hit_warmup"`
	RSSRuns        int    `json:"rss_runs"`
	StraceRuns     int    `json:"strace_runs"`
	StormRounds    int    `json:"storm_rounds"`
	StormN         int    `json:"storm_n"`
	GoBenchTime    string `json:"go_benchtime"`
	RefreshRounds  int    `json:"refresh_rounds"`
	StampedeRounds int    `json:"stampede_rounds"`
	LoginRounds    int    `json:"login_rounds"`
	PollingWait    string `json:"polling_wait"`
}

// newPlan is the full run, or with quick the few runs CI makes.
func newPlan(quick bool) plan {
	if quick {
		return plan{
			Quick:     true,
			HitRounds: 1, HitRuns: 60, HitWarmup: 10, RSSRuns: 5, StraceRuns: 1,
			StormRounds: 2, StormN: 100, GoBenchTime: "100ms",
			RefreshRounds: 3, StampedeRounds: 1, LoginRounds: 2, PollingWait: "4s",
		}
	}
	return plan{
		HitRounds: 5, HitRuns: 200, HitWarmup: 20, RSSRuns: 30, StraceRuns: 5,
		StormRounds: 10, StormN: 100, GoBenchTime: "1s",
		RefreshRounds: 20, StampedeRounds: 3, LoginRounds: 10, PollingWait: "10s",
	}
}

func main() {
	pluginPath := flag.String("plugin", "bin/kubectl-device_login", "the plugin binary to measure, built like `make build`")
	outDir := flag.String("out", "bin/bench", "directory for results.json, the floors and the raw outputs")
	quick := flag.Bool("quick", false, "few runs of everything (CI): checks that the benchmark works, figures are rough")
	strict := flag.Bool("strict", false, "also exit 1 when a timing goal is missed (count goals always fail the run)")
	noProviders := flag.Bool("no-providers", false, "skip the scenarios that need the Node provider (refresh, stampede, login moment)")
	seedOnly := flag.String("seed", "", "only seed a fresh session under this directory and print the cache-hit command, for measuring by hand")
	flag.Parse()
	if *seedOnly != "" {
		hit, err := seedHit(*seedOnly)
		if err != nil {
			fmt.Fprintf(os.Stderr, "device-login-bench: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("KUBERNETES_EXEC_INFO='%s' %s %s\n", execInfo, *pluginPath, program{args: hit.args}.argLine())
		return
	}
	p := newPlan(*quick)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, p, *pluginPath, *outDir, *strict, !*noProviders, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "device-login-bench: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// checkTools looks for what the measurements run, all from Debian's
// packages, and says how to install what is missing.
func checkTools() error {
	var missing, pkgs []string
	for _, t := range []struct{ bin, pkg string }{
		{"hyperfine", "hyperfine"},
		{"strace", "strace"},
		{"/usr/bin/time", "time"},
	} {
		if _, err := exec.LookPath(t.bin); err != nil {
			missing = append(missing, t.bin)
			pkgs = append(pkgs, t.pkg)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not found; install with: apt-get install %s", strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	return nil
}

// moduleRoot finds the directory of go.mod from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it inside the repository (no go.mod found)")
		}
		dir = parent
	}
}

// results is what results.json holds.
type results struct {
	Commit    string     `json:"commit"`
	Time      time.Time  `json:"time"`
	Go        string     `json:"go"`
	Platform  string     `json:"platform"`
	Cores     int        `json:"cores"`
	LoadStart [3]float64 `json:"load_start"`
	LoadEnd   [3]float64 `json:"load_end"`
	Plan      plan       `json:"plan"`
	Plugin    string     `json:"plugin"`

	Latency  map[string]stats  `json:"cache_hit_ms"`
	RSS      map[string]stats  `json:"peak_rss_kib"`
	Size     *sizeReport       `json:"size"`
	Floors   map[string]int64  `json:"floor_sizes_bytes"`
	Syscalls map[string]counts `json:"syscalls"`
	Trace    []string          `json:"cache_hit_trace"`
	Storm    *stormResult      `json:"hit_storm,omitempty"`
	OwnWork  *ownWorkResult    `json:"hit_own_work,omitempty"`
	GoBench  []goBench         `json:"go_benchmarks"`
	Goals    []goalRow         `json:"goals"`
}

// counts is a syscall count in results.json.
type counts struct {
	Total    int            `json:"total"`
	Distinct int            `json:"distinct"`
	Calls    map[string]int `json:"calls"`
}

type stormResult struct {
	N              int     `json:"n"`
	WallMs         stats   `json:"wall_ms"`
	SerialMs       stats   `json:"serial_wall_ms"`
	CPUPerHitMs    stats   `json:"cpu_per_hit_ms"`
	LockHeld       bool    `json:"lock_held"`
	Failed         int     `json:"failed"`
	SpeedupOverOne float64 `json:"speedup_over_serial"`
}

// goalRow is one line of the table.
type goalRow struct {
	Section  string `json:"section"`
	What     string `json:"what"`
	Measured string `json:"measured"`
	Goal     string `json:"goal,omitempty"`
	// Met is nil for a figure without a goal.
	Met *bool `json:"met,omitempty"`
	// Timing goals depend on the machine's load; the others are counts.
	Timing bool `json:"timing,omitempty"`
}

func met(ok bool) *bool { return &ok }

func run(ctx context.Context, p plan, pluginPath, outDir string, strict, providers bool, stdout, progress io.Writer) (int, error) {
	if err := checkTools(); err != nil {
		return 0, err
	}
	// Paths are taken from where the command was run; the builds and
	// go test run from the module's root.
	bin, err := filepath.Abs(pluginPath)
	if err != nil {
		return 0, err
	}
	if _, err := os.Stat(bin); err != nil {
		return 0, fmt.Errorf("no plugin binary at %s; run make build first", bin)
	}
	out, err := filepath.Abs(outDir)
	if err != nil {
		return 0, err
	}
	root, err := moduleRoot()
	if err != nil {
		return 0, err
	}
	if err := os.Chdir(root); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, err
	}
	res := &results{
		Time: time.Now().UTC(), Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Cores: runtime.NumCPU(), LoadStart: hostLoad(), Plan: p, Plugin: bin,
		Latency: map[string]stats{}, RSS: map[string]stats{}, Floors: map[string]int64{}, Syscalls: map[string]counts{},
	}
	if c, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		res.Commit = strings.TrimSpace(string(c))
	}
	say := func(format string, args ...any) { fmt.Fprintf(progress, "bench: "+format+"\n", args...) }
	say("load average %.2f %.2f %.2f on %d cores; %s", res.LoadStart[0], res.LoadStart[1], res.LoadStart[2], res.Cores, map[bool]string{true: "quick run", false: "full run"}[p.Quick])

	// The floors and an unstripped copy of the plugin for the symbol sizes.
	say("building the floors and a copy of the plugin with symbols")
	floors := map[string]string{}
	for _, f := range []string{"hello", "netstack"} {
		built := filepath.Join(out, "build", f)
		if err := goBuild(ctx, built, "./cmd/device-login-bench/testdata/floors/"+f, true); err != nil {
			return 0, err
		}
		if floors[f], err = install(built, filepath.Join(out, "floors", f)); err != nil {
			return 0, err
		}
		if st, err := os.Stat(built); err == nil {
			res.Floors[f] = st.Size()
		}
	}
	symbols := filepath.Join(out, "symbols", "kubectl-device_login")
	if err := goBuild(ctx, symbols, "./cmd/kubectl-device_login", false); err != nil {
		return 0, err
	}
	// Every timed binary is a copy, as installed ones are: see install.
	built := bin
	if bin, err = install(built, filepath.Join(out, "installed", "kubectl-device_login")); err != nil {
		return 0, err
	}

	tmp, err := os.MkdirTemp("", "device-login-bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	hit, err := seedHit(tmp)
	if err != nil {
		return 0, fmt.Errorf("seeding the cache: %v", err)
	}
	env := hitEnv()
	if err := checkHit(bin, hit); err != nil {
		return 0, err
	}
	progs := []program{
		{"hello", floors["hello"], nil},
		{"netstack", floors["netstack"], nil},
		{"plugin", bin, hit.args},
	}

	// 1. Latency of a whole cache-hit process, next to the floors.
	say("1. cache hit vs floors: hyperfine, %d round(s) of %d runs each", p.HitRounds, p.HitRuns)
	times, err := latencies(ctx, progs, p.HitRounds, p.HitRuns, p.HitWarmup, env, out)
	if err != nil {
		return 0, err
	}
	for name, ts := range times {
		res.Latency[name] = summarize(ts)
	}
	say("1. the hit's own work: a hit and `version` in alternation, %d pairs", p.HitRounds*p.HitRuns)
	if res.OwnWork, err = ownWork(ctx, bin, hit.args, p.HitWarmup, p.HitRounds*p.HitRuns, env); err != nil {
		return 0, err
	}

	// 2. Memory and size.
	say("2. peak RSS (GNU time, %d runs each) and binary size", p.RSSRuns)
	for _, pr := range progs {
		kib, err := peakRSS(ctx, pr, p.RSSRuns, env, out)
		if err != nil {
			return 0, err
		}
		res.RSS[pr.name] = summarize(kib)
	}
	if res.Size, err = measureSize(ctx, built, symbols); err != nil {
		return 0, err
	}

	// 7. What a hit does: system calls, next to the network-stack floor.
	say("7. system calls of a cache hit (strace -f, %d run(s))", p.StraceRuns)
	for _, pr := range progs[1:] {
		c, err := medianStrace(ctx, pr, p.StraceRuns, env, out)
		if err != nil {
			return 0, err
		}
		res.Syscalls[pr.name] = counts{Total: c.total(), Distinct: len(c), Calls: c}
	}
	if res.Trace, err = traceEvents(ctx, progs[2], env, out); err != nil {
		return 0, err
	}

	// 5. Hit storm.
	say("5. hit storm: %d parallel cache hits with the session's lock held, %d round(s)", p.StormN, p.StormRounds)
	if res.Storm, err = measureStorm(ctx, bin, hit, p, env); err != nil {
		return 0, err
	}

	// Allocations, and the scenarios with a provider.
	say("7. allocations: go test -bench in cache, plugin and cmd/kubectl-device_login")
	testsDir := filepath.Join(out, "tests")
	benchEnv := append(os.Environ(), "DEVICE_LOGIN_BIN="+bin, "DEVICE_LOGIN_BENCH_WAIT="+p.PollingWait)
	testBins := map[string]string{}
	compiled := func(pkg string) (string, error) {
		if tb, ok := testBins[pkg]; ok {
			return tb, nil
		}
		tb, err := testBinary(ctx, pkg, testsDir)
		testBins[pkg] = tb
		return tb, err
	}
	for _, pkg := range []struct{ path, bench string }{
		{"./cache/", "."},
		{"./cmd/kubectl-device_login/", "^BenchmarkGetTokenCommand$"},
		{"./plugin/", "^BenchmarkCacheHitInProcess$"},
	} {
		tb, err := compiled(pkg.path)
		if err != nil {
			return 0, err
		}
		gb, err := runTestBinary(ctx, tb, filepath.Join(root, pkg.path), benchEnv,
			filepath.Join(out, "gobench-"+filepath.Base(pkg.path)+".txt"), progress,
			"-test.bench", pkg.bench, "-test.benchmem", "-test.benchtime", p.GoBenchTime)
		if err != nil {
			return 0, err
		}
		res.GoBench = append(res.GoBench, gb...)
	}
	if providers {
		tb, err := compiled("./plugin/")
		if err != nil {
			return 0, err
		}
		for _, sc := range []struct {
			label, bench string
			rounds       int
		}{
			{fmt.Sprintf("3. refresh with %s added at the provider, %d round(s)", "50 ms", p.RefreshRounds), "^BenchmarkRefresh$", p.RefreshRounds},
			{fmt.Sprintf("4. stampedes of 10, 50 and 100 processes, %d round(s) each", p.StampedeRounds), "^BenchmarkStampede$", p.StampedeRounds},
			{fmt.Sprintf("6. login moment, %d login(s)", p.LoginRounds), "^BenchmarkLoginMoment$", p.LoginRounds},
			{fmt.Sprintf("6. CPU while polling, %s wait", p.PollingWait), "^BenchmarkPollingCPU$", 1},
		} {
			say("%s", sc.label)
			gb, err := runTestBinary(ctx, tb, filepath.Join(root, "plugin"), benchEnv,
				filepath.Join(out, "gobench-"+strings.Trim(sc.bench, "^$")+".txt"), progress,
				"-test.bench", sc.bench, "-test.benchtime", fmt.Sprintf("%dx", sc.rounds))
			if err != nil {
				return 0, err
			}
			res.GoBench = append(res.GoBench, gb...)
		}
	}
	res.LoadEnd = hostLoad()
	res.Goals = judge(res)

	report(stdout, res)
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return 0, err
	}
	file := filepath.Join(out, "results.json")
	if err := os.WriteFile(file, append(data, '\n'), 0o644); err != nil {
		return 0, err
	}
	fmt.Fprintf(stdout, "\nResults: %s (raw outputs beside it)\n", file)
	code := 0
	for _, g := range res.Goals {
		if g.Met != nil && !*g.Met && (strict || !g.Timing) {
			code = 1
		}
	}
	return code, nil
}

// goBuild builds a package like `make build` does (stripped, trimmed
// paths, no cgo), or with its symbols for the size breakdown.
func goBuild(ctx context.Context, out, pkg string, stripped bool) error {
	args := []string{"build", "-trimpath", "-o", out}
	if stripped {
		args = append(args, "-ldflags", "-s -w")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// install copies a binary the way install(1) and cp(1) do (the kernel's
// copy_file_range, which Go's io.Copy uses between files), as `make
// install` does, and returns the copy's path. A binary fresh from the Go
// linker is written through a memory mapping and sits in the page cache
// in small pieces: each run of it then takes more page faults and starts
// 10–15% slower here than the same bytes installed (measured with the
// plugin and both floors). How a copy is written matters too: one single
// write leaves larger pieces, 5% faster starts and 0.8 MB more of the
// file mapped (peak RSS 7.7 instead of 6.9 MB for the plugin).
func install(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return dst, out.Close()
}

// medianStrace counts the calls of n runs and keeps the run with the
// median total (counts of futex and the like vary with scheduling).
func medianStrace(ctx context.Context, pr program, n int, env []string, out string) (syscallCounts, error) {
	var all []syscallCounts
	for i := 0; i < n; i++ {
		c, err := straceCount(ctx, pr, env, out)
		if err != nil {
			return nil, err
		}
		all = append(all, c)
	}
	slices.SortFunc(all, func(a, b syscallCounts) int { return a.total() - b.total() })
	return all[len(all)/2], nil
}

// measureStorm alternates storms of p.StormN parallel hits with the same
// number of hits one after the other.
func measureStorm(ctx context.Context, bin string, hit *hitSession, p plan, env []string) (*stormResult, error) {
	r := &stormResult{N: p.StormN, LockHeld: true}
	var walls, serials, cpus []float64
	for i := 0; i < p.StormRounds; i++ {
		st, err := hitStorm(ctx, bin, hit, p.StormN, env)
		if err != nil {
			return nil, err
		}
		if st.failed > 0 {
			return nil, fmt.Errorf("hit storm: %d of %d cache hits failed while the lock was held (first: %s)", st.failed, p.StormN, st.message)
		}
		walls = append(walls, ms(st.wall))
		for _, c := range st.cpu {
			cpus = append(cpus, ms(c))
		}
		serial, err := serialHits(bin, hit, p.StormN, env)
		if err != nil {
			return nil, err
		}
		serials = append(serials, ms(serial))
	}
	r.WallMs, r.SerialMs, r.CPUPerHitMs = summarize(walls), summarize(serials), summarize(cpus)
	r.SpeedupOverOne = r.SerialMs.Median / r.WallMs.Median
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// findBench returns the go benchmark with this name.
func findBench(res *results, name string) (goBench, bool) {
	for _, g := range res.GoBench {
		if g.Name == name {
			return g, true
		}
	}
	return goBench{}, false
}

// judge turns the measurements into the table's rows, goals included.
func judge(res *results) []goalRow {
	var rows []goalRow
	add := func(r goalRow) { rows = append(rows, r) }

	hit, hello, net := res.Latency["plugin"], res.Latency["hello"], res.Latency["netstack"]
	limit := 1.1 * net.Median
	add(goalRow{"1", "cache hit, whole process: median (p10–p90)",
		fmt.Sprintf("%.2f ms (%.2f–%.2f), %.2f× netstack, n=%d", hit.Median, hit.P10, hit.P90, hit.Median/net.Median, hit.N),
		fmt.Sprintf("≤ %.2f ms (1.1× netstack)", limit), met(hit.Median <= limit), true})
	add(goalRow{"", "floor: hello world", fmt.Sprintf("%.2f ms (%.2f–%.2f)", hello.Median, hello.P10, hello.P90), "", nil, false})
	add(goalRow{"", "floor: netstack (net/http, x/oauth2, pflag)", fmt.Sprintf("%.2f ms (%.2f–%.2f)", net.Median, net.P10, net.P90), "", nil, false})

	if o := res.OwnWork; o != nil {
		add(goalRow{"", "the hit's own work: hit − version, paired median",
			fmt.Sprintf("%.3f ms wall, %.3f ms CPU (%d pairs in alternation)", o.Wall.Median, o.CPU.Median, o.Wall.N),
			"≤ 0.2 ms", met(o.Wall.Median <= 0.2), true})
	}

	rss := res.RSS["plugin"]
	const rssLimitKiB = 8e6 / 1024 // 8 MB
	add(goalRow{"2", "peak RSS of a cache hit: median / max",
		fmt.Sprintf("%.1f / %.1f MB (hello %.1f, netstack %.1f)", rss.Median*1024/1e6, rss.Max*1024/1e6, res.RSS["hello"].Median*1024/1e6, res.RSS["netstack"].Median*1024/1e6),
		"≤ 8 MB", met(rss.Max <= rssLimitKiB), false})
	if res.Size != nil {
		add(goalRow{"", "stripped binary (-trimpath -s -w)",
			fmt.Sprintf("%.2f MiB (netstack %.2f, hello %.2f)", mib(res.Size.Stripped), mib(res.Floors["netstack"]), mib(res.Floors["hello"])),
			"≤ 8 MiB", met(res.Size.Stripped <= 8<<20), false})
	}

	if g, ok := findBench(res, "BenchmarkRefresh/latency=50ms"); ok {
		lo, _ := g.metric("provider-requests-min")
		hi, _ := g.metric("provider-requests-max")
		add(goalRow{"3", "requests reaching the provider per refresh", fmt.Sprintf("%g–%g over %d refreshes", lo, hi, g.Iterations), "exactly 1", met(lo == 1 && hi == 1), false})
		wall, _ := g.metric("refresh-ms")
		trip, _ := g.metric("roundtrip-ms")
		over, _ := g.metric("overhead-ms")
		overMax, _ := g.metric("overhead-max-ms")
		hitMs, _ := g.metric("hit-ms")
		add(goalRow{"", "refresh with +50 ms at the provider: median",
			fmt.Sprintf("%.1f ms = round trip %.1f + %.1f (max +%.1f; a hit here %.1f)", wall, trip, over, overMax, hitMs),
			"≤ round trip + 10 ms", met(over <= 10), true})
	}
	for _, n := range []int{10, 50, 100} {
		g, ok := findBench(res, fmt.Sprintf("BenchmarkStampede/N=%d", n))
		if !ok {
			continue
		}
		lo, _ := g.metric("refresh-requests-min")
		hi, _ := g.metric("refresh-requests-max")
		wall, _ := g.metric("wall-ms")
		waited, _ := g.metric("said-waiting")
		sec := ""
		if n == 10 {
			sec = "4"
		}
		add(goalRow{sec, fmt.Sprintf("stampede N=%d, expired token: wall, refreshes", n),
			fmt.Sprintf("%.0f ms, %g refresh(es), %g said they waited", wall, hi, waited), "1 refresh", met(lo == 1 && hi == 1), false})
	}
	if st := res.Storm; st != nil {
		ideal := st.SerialMs.Median / float64(min(res.Cores, st.N))
		add(goalRow{"5", fmt.Sprintf("hit storm: %d parallel hits, lock held", st.N),
			fmt.Sprintf("%.0f ms (serial %.0f ms, %.2f× faster; CPU %.2f ms/hit)", st.WallMs.Median, st.SerialMs.Median, st.SpeedupOverOne, st.CPUPerHitMs.Median),
			fmt.Sprintf("≤ %.0f ms (1.5× serial/cores)", 1.5*ideal), met(st.WallMs.Median <= 1.5*ideal), true})
	}
	if g, ok := findBench(res, "BenchmarkLoginMoment"); ok {
		med, _ := g.metric("approval-to-stdout-ms")
		mx, _ := g.metric("approval-to-stdout-max-ms")
		iv, _ := g.metric("interval-ms")
		add(goalRow{"6", "login moment: approval → credential on stdout",
			fmt.Sprintf("median %.0f ms, max %.0f ms (poll interval %.0f ms, %d logins)", med, mx, iv, g.Iterations),
			fmt.Sprintf("≤ %.0f ms (interval + 100)", iv+100), met(mx <= iv+100), true})
	}
	for _, mode := range []string{"pipe", "terminal"} {
		g, ok := findBench(res, "BenchmarkPollingCPU/stderr="+mode)
		if !ok {
			continue
		}
		per, _ := g.metric("cpu-ms-per-s-waiting")
		cpu, _ := g.metric("cpu-ms")
		once, _ := g.metric("cpu-at-once-ms")
		wait, _ := g.metric("wait-s")
		polls, _ := g.metric("polls")
		add(goalRow{"", "CPU while polling, stderr a " + mode,
			fmt.Sprintf("%.2f ms per s waited (%.0f ms for %gs wait, %g polls; %.0f ms approved at once)", per, cpu, wait, polls, once),
			"≤ 10 ms per s (1% of a core)", met(per <= 10), true})
	}

	pl, fl := res.Syscalls["plugin"], res.Syscalls["netstack"]
	if pl.Total > 0 {
		add(goalRow{"7", "system calls of a cache hit (strace -f)",
			fmt.Sprintf("%d calls, %d kinds (netstack floor %d, %d kinds)", pl.Total, pl.Distinct, fl.Total, fl.Distinct), "", nil, false})
		bad := unneededOnHit(res.Trace)
		add(goalRow{"", "no network, lock, directory scan or write on a hit", describeUnneeded(bad), "none", met(len(bad) == 0), false})
	}
	for _, name := range []string{"BenchmarkCacheHitInProcess", "BenchmarkGetTokenCommand"} {
		if g, ok := findBench(res, name); ok {
			a, _ := g.metric("allocs/op")
			by, _ := g.metric("B/op")
			ns, _ := g.metric("ns/op")
			what := map[string]string{"BenchmarkCacheHitInProcess": "allocations: plugin.GetToken hit", "BenchmarkGetTokenCommand": "allocations: get-token command (flags too)"}[name]
			add(goalRow{"", what, fmt.Sprintf("%.0f allocs, %.1f KB, %.0f µs", a, by/1000, ns/1000), "", nil, false})
		}
	}
	return rows
}

// unneededOnHit finds calls in a cache hit's trace that a hit has no
// need for: sockets, locks, directory listings, writes to files.
func unneededOnHit(trace []string) []string {
	var bad []string
	for _, line := range trace {
		name, _, _ := strings.Cut(line, "(")
		switch name {
		case "socket", "connect", "flock", "getdents64", "mkdirat", "mkdir", "unlinkat", "renameat", "renameat2", "fsync", "fdatasync":
			bad = append(bad, line)
		case "openat":
			if strings.Contains(line, "O_CREAT") || strings.Contains(line, "O_WRONLY") || strings.Contains(line, "O_RDWR") {
				bad = append(bad, line)
			}
		}
	}
	return bad
}

func describeUnneeded(bad []string) string {
	if len(bad) == 0 {
		return "none seen"
	}
	s := fmt.Sprintf("%d: %s", len(bad), bad[0])
	if len(s) > 90 {
		s = s[:90] + "…"
	}
	return s
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// report prints the table and the details behind it.
func report(w io.Writer, res *results) {
	mode := "full run"
	if res.Plan.Quick {
		mode = "QUICK run (few samples: figures are rough)"
	}
	fmt.Fprintf(w, "\nkubectl-device-login benchmarks — %s, %s %s, %d cores, load %.2f at start / %.2f at end, %s\n\n",
		res.Commit, res.Go, res.Platform, res.Cores, res.LoadStart[0], res.LoadEnd[0], mode)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\twhat\tmeasured\tgoal\tmet")
	for _, g := range res.Goals {
		m := ""
		if g.Met != nil {
			m = map[bool]string{true: "yes", false: "NO"}[*g.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Section, g.What, g.Measured, g.Goal, m)
	}
	tw.Flush()

	if s := res.Size; s != nil {
		fmt.Fprintf(w, "\nWhat the binary holds (%.2f MiB stripped). ELF sections:\n", mib(s.Stripped))
		for i, sec := range s.Sections {
			if i == 8 {
				break
			}
			fmt.Fprintf(w, "  %-16s %8.0f KiB\n", sec.Name, float64(sec.Bytes)/1024)
		}
		fmt.Fprintf(w, "Symbols by module (go tool nm -size, stored sections; %.0f KiB of linker tables unattributed):\n", float64(s.Unattributed)/1024)
		for i, m := range s.ByModule {
			if i == 12 {
				break
			}
			fmt.Fprintf(w, "  %-52s %8.0f KiB\n", m.Name, float64(m.Bytes)/1024)
		}
		fmt.Fprintln(w, "Largest packages:")
		for i, pkg := range s.Packages {
			if i == 15 {
				break
			}
			fmt.Fprintf(w, "  %-52s %8.0f KiB\n", pkg.Name, float64(pkg.Bytes)/1024)
		}
		fmt.Fprintf(w, "Modules linked (go version -m): %s\n", strings.Join(s.Modules, ", "))
	}

	if pl, fl := res.Syscalls["plugin"], res.Syscalls["netstack"]; pl.Total > 0 {
		fmt.Fprintf(w, "\nSystem calls of a cache hit (strace -f -c; netstack floor in brackets; + marks calls above the floor):\n")
		names := make([]string, 0, len(pl.Calls))
		for n := range pl.Calls {
			names = append(names, n)
		}
		for n := range fl.Calls {
			if _, ok := pl.Calls[n]; !ok {
				names = append(names, n)
			}
		}
		sortByCount(names, pl.Calls)
		var parts []string
		for _, n := range names {
			mark := ""
			if pl.Calls[n] > fl.Calls[n] {
				mark = "+"
			}
			parts = append(parts, fmt.Sprintf("%s%s %d [%d]", mark, n, pl.Calls[n], fl.Calls[n]))
		}
		fmt.Fprint(w, wrap(parts, 110, "  "))
		fmt.Fprintln(w, "Files, descriptors and identity calls of a cache hit, in order (strace -f, file, descriptor and network classes):")
		for _, l := range res.Trace {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if len(res.GoBench) > 0 {
		fmt.Fprintln(w, "\ngo test -bench:")
		for _, g := range res.GoBench {
			var parts []string
			for _, unit := range sortedUnits(g.Metrics) {
				parts = append(parts, formatNumber(g.Metrics[unit])+" "+unit)
			}
			fmt.Fprintf(w, "  %s (%d): %s\n", g.Name, g.Iterations, strings.Join(parts, ", "))
		}
	}
}

// wrap joins parts with commas into lines of at most width characters.
func wrap(parts []string, width int, indent string) string {
	var b strings.Builder
	line := indent
	for i, p := range parts {
		if i < len(parts)-1 {
			p += ","
		}
		if len(line) > len(indent) && len(line)+1+len(p) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += p
	}
	return b.String() + line + "\n"
}

// formatNumber prints large values whole and small ones with four
// significant digits, never in exponent form.
func formatNumber(v float64) string {
	if v >= 1000 || v == float64(int64(v)) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', max(0, 3-int(math.Floor(math.Log10(math.Abs(v))))), 64)
}

func sortByCount(names []string, c map[string]int) {
	slices.SortFunc(names, func(a, b string) int {
		if c[a] != c[b] {
			return c[b] - c[a]
		}
		return strings.Compare(a, b)
	})
}

func sortedUnits(m map[string]float64) []string {
	return slices.Sorted(maps.Keys(m))
}
