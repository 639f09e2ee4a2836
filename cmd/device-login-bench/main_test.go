package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// The parsers read outputs that hyperfine, strace and go test really
// printed on this kind of machine (testdata), so that a change in their
// format shows here rather than as an empty table.

func TestParseStraceSummaryAddsUpToItsTotal(t *testing.T) {
	data, err := os.ReadFile("testdata/strace-count.txt")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseStraceSummary(string(data))
	if err != nil {
		t.Fatal(err)
	}
	// The last line of the table is strace's own sum of the calls column.
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if f[len(f)-1] != "total" {
		t.Fatalf("last line %q is not the total", lines[len(lines)-1])
	}
	want, _ := strconv.Atoi(f[3])
	if c.total() != want || c["rt_sigaction"] == 0 || c["openat"] == 0 {
		t.Errorf("parsed %d calls (%v), strace counted %d", c.total(), c, want)
	}
	if _, err := parseStraceSummary("strace: exec: No such file or directory\n"); err == nil {
		t.Error("a summary without calls was accepted")
	}
}

func TestParseGoBenchReadsReportedMetrics(t *testing.T) {
	data, err := os.ReadFile("testdata/gobench.txt")
	if err != nil {
		t.Fatal(err)
	}
	res := parseGoBench(string(data))
	if len(res) != 3 {
		t.Fatalf("parsed %d results, want 3: %+v", len(res), res)
	}
	g := res[2]
	if g.Name != "BenchmarkStampede/N=100" || g.Iterations != 1 {
		t.Errorf("name %q iterations %d", g.Name, g.Iterations)
	}
	for _, unit := range []string{"ns/op", "refresh-requests-max", "refresh-requests-min", "said-waiting", "wall-max-ms", "wall-ms"} {
		if _, ok := g.metric(unit); !ok {
			t.Errorf("no %s in %v", unit, g.Metrics)
		}
	}
	if ns, _ := g.metric("ns/op"); ns <= 0 {
		t.Errorf("ns/op %v", ns)
	}
}

func TestParseTraceJoinsInterruptedCalls(t *testing.T) {
	data, err := os.ReadFile("testdata/strace-trace.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := parseTrace(string(data))
	var tz string
	for _, l := range lines {
		if strings.HasPrefix(l, "epoll_pwait(") || strings.Contains(l, "resumed>") || strings.Contains(l, "unfinished") {
			t.Errorf("line kept: %q", l)
		}
		if strings.HasPrefix(l, "read(5, \"TZif") {
			tz = l
		}
	}
	if !strings.HasSuffix(tz, "= 114") {
		t.Errorf("the interrupted read was not joined with its result: %q", tz)
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "write(1, ") {
		t.Errorf("the process ID column was not dropped, or lines were lost: %q", lines)
	}
}

func TestUnneededOnHit(t *testing.T) {
	clean := []string{`openat(AT_FDCWD, "/c/x.json", O_RDONLY|O_CLOEXEC) = 5`, `write(1, "{}", 2) = 2`}
	if bad := unneededOnHit(clean); len(bad) != 0 {
		t.Errorf("a plain read was flagged: %v", bad)
	}
	for _, l := range []string{
		`flock(5, LOCK_EX|LOCK_NB) = 0`,
		`openat(AT_FDCWD, "/c/x.lock", O_RDONLY|O_CREAT|O_CLOEXEC, 0600) = 5`,
		`socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 3`,
		`getdents64(5, 0xc000, 8192) = 48`,
	} {
		if bad := unneededOnHit([]string{l}); len(bad) != 1 {
			t.Errorf("not flagged: %s", l)
		}
	}
}

func TestSymbolPackage(t *testing.T) {
	for sym, want := range map[string]string{
		"github.com/godbus/dbus/v5.(*Conn).Send":         "github.com/godbus/dbus/v5",
		"net/http.(*Transport).dialConn":                 "net/http",
		"type:*github.com/spf13/pflag.FlagSet":           "github.com/spf13/pflag",
		"go:itab.*net/http.persistConn,io.Reader":        "net/http",
		"slices.Sort[go.shape.[]string,go.shape.string]": "slices",
		"vendor/golang.org/x/net/idna.idnaValues":        "vendor/golang.org/x/net/idna",
		"go:func.*":       "",
		"runtime.pclntab": "",
		"github.com/devicelogin/kubectl-device-login/plugin.init.0": "github.com/devicelogin/kubectl-device-login/plugin",
	} {
		if got := symbolPackage(sym); got != want {
			t.Errorf("symbolPackage(%q) = %q, want %q", sym, got, want)
		}
	}
	mods := []string{"github.com/godbus/dbus/v5 v5.2.2", "golang.org/x/oauth2 v0.38.0"}
	for pkg, want := range map[string]string{
		"github.com/godbus/dbus/v5":                          "github.com/godbus/dbus/v5",
		"golang.org/x/oauth2/internal":                       "golang.org/x/oauth2",
		"vendor/golang.org/x/net/idna":                       "std",
		"net/http":                                           "std",
		"github.com/devicelogin/kubectl-device-login/plugin": "github.com/devicelogin/kubectl-device-login",
	} {
		if got := packageModule(pkg, "github.com/devicelogin/kubectl-device-login", mods); got != want {
			t.Errorf("packageModule(%q) = %q, want %q", pkg, got, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{5, 1, 4, 2, 3})
	if s.N != 5 || s.Median != 3 || s.Min != 1 || s.Max != 5 || s.Mean != 3 {
		t.Errorf("%+v", s)
	}
	if s.P10 <= s.Min || s.P10 >= s.Median || s.P90 <= s.Median || s.P90 >= s.Max {
		t.Errorf("p10 %v and p90 %v are not between the extremes and the median", s.P10, s.P90)
	}
}

func TestFormatNumber(t *testing.T) {
	for v, want := range map[float64]string{66470000: "66470000", 1000: "1000", 57: "57", 8.317: "8.317", 0.6695: "0.6695", 14.05: "14.05", 0.001234: "0.001234"} {
		if got := formatNumber(v); got != want {
			t.Errorf("formatNumber(%v) = %q, want %q", v, got, want)
		}
	}
	if got := wrap([]string{"aaaa", "bbbb", "cccc"}, 13, "  "); got != "  aaaa, bbbb,\n  cccc\n" {
		t.Errorf("wrap: %q", got)
	}
}
