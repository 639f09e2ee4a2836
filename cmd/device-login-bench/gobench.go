package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// goBench is one line of `go test -bench` output.
type goBench struct {
	// Name is the benchmark's name without the -GOMAXPROCS suffix.
	Name       string             `json:"name"`
	Iterations int                `json:"iterations"`
	Metrics    map[string]float64 `json:"metrics"` // by unit: ns/op, B/op, allocs/op, and the reported ones
}

// metric returns the value of a unit, and whether it was reported.
func (g goBench) metric(unit string) (float64, bool) {
	v, ok := g.Metrics[unit]
	return v, ok
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// parseGoBench reads the result lines of `go test -bench` output.
func parseGoBench(out string) []goBench {
	var res []goBench
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		g := goBench{Name: procsSuffix.ReplaceAllString(f[0], ""), Iterations: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			g.Metrics[f[i+1]] = v
		}
		res = append(res, g)
	}
	return res
}

// testBinary compiles the tests of a package once, so that several
// benchmark runs share one build.
func testBinary(ctx context.Context, pkg, outDir string) (string, error) {
	bin := filepath.Join(outDir, strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "_")+".test")
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go test -c %s: %v\n%s", pkg, err, out)
	}
	return filepath.Abs(bin)
}

// runTestBinary runs benchmarks of a compiled test binary in the package's
// directory, keeping the whole output in logFile, and returns the parsed
// results. A failing benchmark is an error that quotes the output's end.
func runTestBinary(ctx context.Context, bin, dir string, env []string, logFile string, progress io.Writer, args ...string) ([]goBench, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"-test.run", "^$", "-test.timeout", "45m"}, args...)...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	// One writer for both, so that exec gives them one pipe: two copies
	// into one buffer would race.
	w := io.MultiWriter(&out, newProgressLines(progress))
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	os.WriteFile(logFile, out.Bytes(), 0o644)
	if err != nil {
		tail := out.String()
		if len(tail) > 3000 {
			tail = "…" + tail[len(tail)-3000:]
		}
		return nil, fmt.Errorf("%s %s: %v (whole output in %s)\n%s", filepath.Base(bin), strings.Join(args, " "), err, logFile, tail)
	}
	return parseGoBench(out.String()), nil
}

// progressLines echoes complete benchmark result lines as they come,
// for a person watching a long run.
type progressLines struct {
	w       io.Writer
	partial *bytes.Buffer
}

func newProgressLines(w io.Writer) progressLines {
	return progressLines{w: w, partial: &bytes.Buffer{}}
}

func (p progressLines) Write(b []byte) (int, error) {
	p.partial.Write(b)
	for {
		line, err := p.partial.ReadString('\n')
		if err != nil {
			// Keep the incomplete line for the next write.
			rest := line
			p.partial.Reset()
			p.partial.WriteString(rest)
			return len(b), nil
		}
		if f := strings.Fields(line); len(f) > 2 && strings.HasPrefix(f[0], "Benchmark") {
			fmt.Fprintf(p.w, "  %s\n", strings.Join(f, " "))
		}
	}
}
