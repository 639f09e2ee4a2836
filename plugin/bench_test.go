package plugin_test

// Benchmarks for `make bench` (cmd/device-login-bench prints their figures
// next to their goals). The in-process one measures the cache-hit path's
// allocations; the others run the built plugin binary against npm
// oidc-provider under Node, a real provider that rotates refresh tokens and
// revokes the grant when one is spent twice, and count requests at the
// provider itself. Each reports its figures with b.ReportMetric: medians
// and maxima over b.N rounds (use -benchtime=Nx), in the units named.
// Without $DEVICE_LOGIN_BIN they time TestMain's unstripped build; make
// bench passes an installed copy of the stripped one.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
)

// benchExecInfo is KUBERNETES_EXEC_INFO as kubectl sets it for a user
// entry with interactiveMode Never.
const benchExecInfo = `{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`

// benchAddedLatency is the delay the refresh benchmark adds in front of
// the provider, for every request.
const benchAddedLatency = 50 * time.Millisecond

// BenchmarkCacheHitInProcess is the cache-hit path of get-token inside one
// process: options checked, session file read and decoded, credential
// encoded. Its allocations are the hit's; the process start-up around it
// is measured by the driver with hyperfine.
func BenchmarkCacheHitInProcess(b *testing.B) {
	dir := b.TempDir()
	const issuer, clientID = "http://127.0.0.1:9", "kubectl"
	now := time.Now()
	e := &cache.Entry{
		Key:           cache.Key{Issuer: issuer, ClientID: clientID, Scopes: plugin.DefaultScopes, Token: plugin.TokenAccess}.Normalize(),
		TokenEndpoint: issuer + "/token",
		AccessToken:   benchJWTSized(), Expiry: now.Add(time.Hour),
		RefreshToken: benchRandom(32),
		IDToken:      benchJWTSized(), IDTokenExpiry: now.Add(time.Hour),
		IssuedAt: now,
	}
	if err := (cache.Store{Dir: dir}).Save(e); err != nil {
		b.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	o := plugin.Options{IssuerURL: issuer, ClientID: clientID, CacheDir: dir, ExecInfo: benchExecInfo}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		stdout.Reset()
		s, err := plugin.Resolve(o)
		if err != nil {
			b.Fatal(err)
		}
		cred, err := plugin.GetToken(ctx, s, terminal.New(&stderr, terminal.Options{}))
		if err != nil {
			b.Fatal(err)
		}
		if err := cred.Write(&stdout); err != nil {
			b.Fatal(err)
		}
	}
	if !strings.Contains(stdout.String(), `"token":"`+e.AccessToken+`"`) || stderr.Len() > 0 {
		b.Fatalf("not a quiet cache hit: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

// BenchmarkRefresh times a refresh through the plugin binary when every
// request to the provider takes benchAddedLatency longer, next to one
// round trip of the same refresh request sent by this process over a new
// connection (which also yields the refresh token the plugin then spends).
// ns/op is the plugin's wall time; overhead-ms is plugin minus round trip,
// per round; provider-requests is what reached the provider (through the
// delaying proxy) per refresh.
func BenchmarkRefresh(b *testing.B) {
	p := providertest.StartNode(b, providertest.Options{})
	proxy := benchStartProxy(b, p.Issuer(), benchAddedLatency)
	s := newSession(b, p)
	ctx := testContext(b, 20*time.Minute)
	runPlugin(b, ctx, invocation{args: s.args("get-token", "--device-login=always"), onCode: s.approve(b)}).credential(b)
	direct, err := url.Parse(s.entry(b).TokenEndpoint)
	if err != nil {
		b.Fatal(err)
	}
	tokenURL := proxy.URL + direct.Path
	b.Run(fmt.Sprintf("latency=%dms", benchAddedLatency.Milliseconds()), func(b *testing.B) {
		var walls, trips, overheads, hits []float64
		var reqs []float64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := s.entry(b)
			start := time.Now()
			tok := benchRefreshDirect(b, ctx, tokenURL, p.ClientID(), e.RefreshToken)
			trip := time.Since(start)
			e.AccessToken, e.RefreshToken, e.IDToken = tok.AccessToken, tok.RefreshToken, tok.IDToken
			e.TokenEndpoint = tokenURL
			e.IssuedAt, e.Expiry = time.Now().Add(-61*time.Minute), time.Now().Add(-time.Minute)
			if err := (cache.Store{Dir: s.cacheDir}).Save(e); err != nil {
				b.Fatal(err)
			}
			before, seen := s.counts(b), proxy.requests()
			b.StartTimer()
			r := runPlugin(b, ctx, invocation{args: s.args("get-token", "--device-login=never"), env: []string{"KUBERNETES_EXEC_INFO=" + benchExecInfo}})
			b.StopTimer()
			cred := r.credential(b)
			after, through := s.counts(b), proxy.requests()
			ne := s.entry(b)
			if cred.Status.Token != ne.AccessToken || ne.RefreshToken == e.RefreshToken || ne.AccessToken == e.AccessToken {
				b.Fatalf("round %d: the plugin did not refresh: %s", i, r.stderr)
			}
			if n := benchTotal(after) - benchTotal(before); n != through-seen {
				b.Fatalf("round %d: the provider counted %d requests but %d went through the proxy", i, n, through-seen)
			}
			hit := runPlugin(b, ctx, invocation{args: s.args("get-token", "--device-login=never"), env: []string{"KUBERNETES_EXEC_INFO=" + benchExecInfo}})
			if hit.credential(b).Status.Token != ne.AccessToken {
				b.Fatalf("round %d: the cache hit after the refresh printed another token", i)
			}
			walls = append(walls, benchMs(r.took))
			trips = append(trips, benchMs(trip))
			overheads = append(overheads, benchMs(r.took-trip))
			hits = append(hits, benchMs(hit.took))
			reqs = append(reqs, float64(benchTotal(after)-benchTotal(before)))
		}
		b.ReportMetric(benchMedian(walls), "refresh-ms")
		b.ReportMetric(benchMedian(trips), "roundtrip-ms")
		b.ReportMetric(benchMedian(overheads), "overhead-ms")
		b.ReportMetric(slices.Max(overheads), "overhead-max-ms")
		b.ReportMetric(benchMedian(hits), "hit-ms")
		b.ReportMetric(slices.Min(reqs), "provider-requests-min")
		b.ReportMetric(slices.Max(reqs), "provider-requests-max")
	})
}

// BenchmarkStampede starts N plugin processes at once on an expired
// session and times them until the last exits. Every process must print
// the same new token, and the provider must have seen one refresh: had a
// refresh token been spent twice, oidc-provider would have revoked the
// session and the next round would fail.
func BenchmarkStampede(b *testing.B) {
	p := providertest.StartNode(b, providertest.Options{})
	s := newSession(b, p)
	ctx := testContext(b, 30*time.Minute)
	runPlugin(b, ctx, invocation{args: s.args("get-token", "--device-login=always"), onCode: s.approve(b)}).credential(b)
	for _, n := range []int{10, 50, 100} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var walls, refreshes, waited []float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				old := s.entry(b)
				old.IssuedAt, old.Expiry = time.Now().Add(-61*time.Minute), time.Now().Add(-time.Minute)
				if err := (cache.Store{Dir: s.cacheDir}).Save(old); err != nil {
					b.Fatal(err)
				}
				before := s.counts(b)
				b.StartTimer()
				start := time.Now()
				procs := make([]*benchProc, n)
				for j := range procs {
					procs[j] = benchStart(b, ctx, s.args("get-token", "--device-login=never"), false, "KUBERNETES_EXEC_INFO="+benchExecInfo)
				}
				for _, pr := range procs {
					pr.wait()
				}
				wall := time.Since(start)
				b.StopTimer()
				after := s.counts(b)
				ne := s.entry(b)
				w := 0
				for j, pr := range procs {
					if pr.exit != 0 || !strings.Contains(pr.stdout.String(), `"token":"`+ne.AccessToken+`"`) {
						b.Fatalf("round %d, process %d: exit %d, not the new token\n%s", i, j, pr.exit, pr.stderr.String())
					}
					if strings.Contains(pr.stderr.String(), "waiting for it to finish") {
						w++
					}
				}
				if ne.AccessToken == old.AccessToken || after.DeviceAuthorization != before.DeviceAuthorization {
					b.Fatalf("round %d: no refresh, or a device login started", i)
				}
				walls = append(walls, benchMs(wall))
				refreshes = append(refreshes, float64(after.RefreshTokenGrant-before.RefreshTokenGrant))
				waited = append(waited, float64(w))
			}
			b.ReportMetric(benchMedian(walls), "wall-ms")
			b.ReportMetric(slices.Max(walls), "wall-max-ms")
			b.ReportMetric(slices.Max(refreshes), "refresh-requests-max")
			b.ReportMetric(slices.Min(refreshes), "refresh-requests-min")
			b.ReportMetric(benchMedian(waited), "said-waiting")
		})
	}
}

// BenchmarkLoginMoment times a device login from the moment the approval
// is answered at the provider to the moment the credential reaches the
// plugin's stdout. Round i approves at a different point of the polling
// cycle (i/N of two intervals after the code is shown), so that the
// maximum covers an approval just after a poll.
func BenchmarkLoginMoment(b *testing.B) {
	const interval = time.Second
	p := providertest.StartNode(b, providertest.Options{Interval: interval})
	ctx := testContext(b, 20*time.Minute)
	var moments []float64
	for i := 0; i < b.N; i++ {
		s := newSession(b, p)
		delay := 2 * interval * time.Duration(i) / time.Duration(b.N)
		pr := benchStart(b, ctx, s.args("get-token", "--device-login=always"), false)
		code := pr.code(b, ctx)
		time.Sleep(delay)
		if err := p.Approve(ctx, code); err != nil {
			b.Fatal(err)
		}
		approved := time.Now()
		pr.wait()
		if pr.exit != 0 || pr.firstOut.IsZero() {
			b.Fatalf("round %d: exit %d\n%s", i, pr.exit, pr.stderr.String())
		}
		moments = append(moments, benchMs(pr.firstOut.Sub(approved)))
	}
	b.ReportMetric(benchMedian(moments), "approval-to-stdout-ms")
	b.ReportMetric(slices.Max(moments), "approval-to-stdout-max-ms")
	b.ReportMetric(benchMs(interval), "interval-ms")
}

// BenchmarkPollingCPU measures the CPU time (user + system, from the
// kernel) of a device login that waits for approval, against one approved
// at once: the difference per second of waiting is what polling costs.
// The wait is $DEVICE_LOGIN_BENCH_WAIT (default 10s). With
// stderr=terminal, stderr is a pseudo-terminal and the countdown is
// redrawn every second.
func BenchmarkPollingCPU(b *testing.B) {
	wait := 10 * time.Second
	if v := os.Getenv("DEVICE_LOGIN_BENCH_WAIT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("DEVICE_LOGIN_BENCH_WAIT: %v", err)
		}
		wait = d
	}
	p := providertest.StartNode(b, providertest.Options{Interval: time.Second})
	ctx := testContext(b, 20*time.Minute)
	for _, terminal := range []bool{false, true} {
		b.Run(map[bool]string{false: "stderr=pipe", true: "stderr=terminal"}[terminal], func(b *testing.B) {
			var perSecond, waitedCPU, atOnceCPU, polls []float64
			for i := 0; i < b.N; i++ {
				login := func(d time.Duration) (time.Duration, int) {
					s := newSession(b, p)
					before := s.counts(b)
					pr := benchStart(b, ctx, s.args("get-token", "--device-login=always"), terminal, "NO_COLOR=1", "TERM=xterm-256color")
					code := pr.code(b, ctx)
					time.Sleep(d)
					if err := p.Approve(ctx, code); err != nil {
						b.Fatal(err)
					}
					pr.wait()
					if pr.exit != 0 {
						b.Fatalf("exit %d\n%s", pr.exit, pr.stderr.String())
					}
					return pr.cpu, s.counts(b).DeviceCodeGrant - before.DeviceCodeGrant
				}
				atOnce, _ := login(0)
				waited, n := login(wait)
				atOnceCPU = append(atOnceCPU, benchMs(atOnce))
				waitedCPU = append(waitedCPU, benchMs(waited))
				perSecond = append(perSecond, benchMs(waited-atOnce)/wait.Seconds())
				polls = append(polls, float64(n))
			}
			b.ReportMetric(wait.Seconds(), "wait-s")
			b.ReportMetric(benchMedian(waitedCPU), "cpu-ms")
			b.ReportMetric(benchMedian(atOnceCPU), "cpu-at-once-ms")
			b.ReportMetric(benchMedian(perSecond), "cpu-ms-per-s-waiting")
			b.ReportMetric(benchMedian(polls), "polls")
		})
	}
}

// benchProc is a running plugin process whose stdout, stderr and CPU time
// the benchmark reads.
type benchProc struct {
	cmd      *exec.Cmd
	stdout   bytes.Buffer
	stderr   providertest.SyncBuffer
	firstOut time.Time // when the first byte reached stdout
	done     chan struct{}
	exit     int
	cpu      time.Duration
}

// benchStart starts the plugin binary with stdout on a pipe, and stderr on
// a pipe or, with terminal, on a pseudo-terminal of 80x24.
func benchStart(b *testing.B, ctx context.Context, args []string, terminal bool, env ...string) *benchProc {
	b.Helper()
	pr := &benchProc{done: make(chan struct{})}
	pr.cmd = exec.CommandContext(ctx, pluginBin, args...)
	pr.cmd.Env = append(baseEnv(), env...)
	out, err := pr.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var errSide io.Closer
	var errRead io.ReadCloser
	if terminal {
		ptmx, tty, err := pty.Open()
		if err != nil {
			b.Fatalf("opening a pseudo-terminal: %v", err)
		}
		pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80})
		pr.cmd.Stderr, errSide, errRead = tty, tty, ptmx
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		pr.cmd.Stderr, errSide, errRead = w, w, r
	}
	if err := pr.cmd.Start(); err != nil {
		errSide.Close()
		errRead.Close()
		b.Fatal(err)
	}
	errSide.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		io.Copy(&pr.stderr, errRead)
	}()
	go func() {
		defer wg.Done()
		br := bufio.NewReader(out)
		if _, err := br.Peek(1); err == nil {
			pr.firstOut = time.Now()
		}
		io.Copy(&pr.stdout, br)
	}()
	go func() {
		// A pseudo-terminal's reader ends with an error when the process is
		// gone, a pipe's with EOF: both before or just after Wait.
		wg.Wait()
		errRead.Close()
		err := pr.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			pr.exit = ee.ExitCode()
		} else if err != nil {
			pr.exit = -2
		}
		if st := pr.cmd.ProcessState; st != nil {
			pr.cpu = st.UserTime() + st.SystemTime()
		}
		close(pr.done)
	}()
	return pr
}

func (pr *benchProc) wait() { <-pr.done }

// benchCodeRE finds the user code on stderr, plain or on a terminal.
var benchCodeRE = regexp.MustCompile(`Enter the code:\s+([^\s\x1b]+)\s`)

// code waits until the process shows its user code.
func (pr *benchProc) code(b *testing.B, ctx context.Context) string {
	b.Helper()
	for {
		if m := benchCodeRE.FindStringSubmatch(pr.stderr.String()); m != nil {
			return m[1]
		}
		select {
		case <-pr.done:
			b.Fatalf("the plugin exited %d without a code:\n%s", pr.exit, pr.stderr.String())
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// benchProxy forwards to a provider, holding every request back first.
type benchProxy struct {
	*httptest.Server
	n atomic.Int64
}

func (p *benchProxy) requests() int { return int(p.n.Load()) }

func benchStartProxy(b *testing.B, target string, delay time.Duration) *benchProxy {
	u, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &benchProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.n.Add(1)
		time.Sleep(delay)
		rp.ServeHTTP(w, r)
	}))
	b.Cleanup(p.Close)
	return p
}

// benchTokens is a token response.
type benchTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

// benchRefreshDirect spends a refresh token with one POST over a new
// connection, as a new plugin process would.
func benchRefreshDirect(b *testing.B, ctx context.Context, tokenURL, clientID, refreshToken string) benchTokens {
	b.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {clientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var t benchTokens
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || resp.StatusCode != http.StatusOK || t.RefreshToken == "" {
		b.Fatalf("refreshing directly: HTTP %d, %v", resp.StatusCode, err)
	}
	return t
}

func benchTotal(c providertest.Counts) int {
	return c.Discovery + c.DeviceAuthorization + c.DeviceCodeGrant + c.RefreshTokenGrant + c.Revocation
}

func benchMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func benchMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func benchRandom(n int) string {
	buf := make([]byte, n)
	rand.Read(buf)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// benchJWTSized is a random token shaped and sized like an RS256 JWT.
func benchJWTSized() string {
	return benchRandom(27) + "." + benchRandom(300) + "." + benchRandom(256)
}
