package plugin_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// pluginBin is the plugin binary under test, built once by TestMain (or
// given by $DEVICE_LOGIN_BIN, as `make test` does).
var pluginBin string

func TestMain(m *testing.M) {
	// zitadel's op logs every route and every error answer through the
	// global logger; the tests read what the plugin says, not that.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	if p := os.Getenv("DEVICE_LOGIN_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pluginBin = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "device-login-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	pluginBin = filepath.Join(dir, "kubectl-device_login")
	out, err := exec.Command("go", "build", "-o", pluginBin, "../cmd/kubectl-device_login").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the plugin: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// providers are the real providers every scenario runs against.
var providers = []struct {
	name  string
	start func(testing.TB, providertest.Options) providertest.Provider
}{
	{"oidc-provider", providertest.StartNode},
	{"zitadel", providertest.StartZitadel},
}

// userCodeRE finds the user code in the plugin's login prompt.
var userCodeRE = regexp.MustCompile(`Enter the code:\s+(\S+)\n`)

// result is one finished plugin process.
type result struct {
	stdout, stderr string
	exit           int
	took           time.Duration
}

// invocation describes one plugin process.
type invocation struct {
	args []string
	env  []string
	// onCode is called (once, in its own goroutine) with the user code
	// when the prompt appears on stderr.
	onCode func(code string)
}

// runPlugin runs the plugin binary and waits for it.
func runPlugin(t testing.TB, ctx context.Context, inv invocation) result {
	t.Helper()
	return runBinary(t, ctx, pluginBin, inv)
}

// runBinary runs a program (the plugin, kubectl) and waits for it.
func runBinary(t testing.TB, ctx context.Context, bin string, inv invocation) result {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, inv.args...)
	cmd.Env = append(baseEnv(), inv.env...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderrR, stderrW := io.Pipe()
	cmd.Stderr = stderrW
	var stderr bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchCode(stderrR, &stderr, inv.onCode)
	}()
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	stderrW.Close()
	wg.Wait()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: took}
	if ee, ok := err.(*exec.ExitError); ok {
		r.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", bin, err)
	}
	return r
}

// watchCode copies r into all, calling onCode when a user code appears.
func watchCode(r io.Reader, all *bytes.Buffer, onCode func(string)) {
	br := bufio.NewReader(r)
	called := false
	for {
		line, err := br.ReadString('\n')
		all.WriteString(line)
		if !called && onCode != nil {
			if m := userCodeRE.FindStringSubmatch(all.String()); m != nil {
				called = true
				go onCode(m[1])
			}
		}
		if err != nil {
			return
		}
	}
}

// baseEnv keeps the plugin away from the developer's own cache and from
// any KUBERNETES_EXEC_INFO of the test's parent.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBERNETES_EXEC_INFO=") || strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// session is one provider plus a cache directory and the flags for it.
type session struct {
	p        providertest.Provider
	cacheDir string
	flags    []string
}

func newSession(t testing.TB, p providertest.Provider, extra ...string) *session {
	dir := filepath.Join(t.TempDir(), "cache")
	return &session{p: p, cacheDir: dir, flags: append([]string{
		"--issuer-url=" + p.Issuer(), "--client-id=" + p.ClientID(), "--cache-dir=" + dir,
	}, extra...)}
}

func (s *session) args(cmd string, more ...string) []string {
	return append(append([]string{cmd}, s.flags...), more...)
}

// approve returns an onCode that approves the login at the provider.
func (s *session) approve(t testing.TB) func(string) {
	return func(code string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.p.Approve(ctx, code); err != nil {
			t.Errorf("approving %s: %v", code, err)
		}
	}
}

func (s *session) deny(t testing.TB) func(string) {
	return func(code string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.p.Deny(ctx, code); err != nil {
			t.Errorf("denying %s: %v", code, err)
		}
	}
}

// entry reads the only session in the cache directory.
func (s *session) entry(t testing.TB) *cache.Entry {
	t.Helper()
	l, err := (&cache.Sessions{Dir: s.cacheDir}).List()
	if err != nil || len(l) != 1 || len(l[0].Copies) != 1 || l[0].Newest() == nil {
		t.Fatalf("cache holds %+v (%v), want one session in one copy", l, err)
	}
	return l[0].Newest()
}

func (s *session) counts(t testing.TB) providertest.Counts {
	t.Helper()
	c, err := s.p.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// credential is the ExecCredential a run printed.
type credential struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Status     struct {
		Token               string `json:"token"`
		ExpirationTimestamp string `json:"expirationTimestamp"`
	} `json:"status"`
}

// credential checks that stdout is exactly one ExecCredential and decodes it.
func (r result) credential(t testing.TB) credential {
	t.Helper()
	if r.exit != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.exit, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	var c credential
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("stdout is not an ExecCredential: %v\n%q", err, r.stdout)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); strings.TrimSpace(string(rest)) != "" || dec.More() {
		t.Fatalf("stdout holds more than one document: %q", r.stdout)
	}
	if c.Kind != "ExecCredential" || c.Status.Token == "" {
		t.Fatalf("credential %+v", c)
	}
	if c.Status.ExpirationTimestamp != "" {
		exp, err := time.Parse(time.RFC3339, c.Status.ExpirationTimestamp)
		if err != nil {
			t.Fatalf("expirationTimestamp: %v", err)
		}
		if !exp.After(time.Now().Add(-time.Second)) {
			t.Errorf("expirationTimestamp %s is already past", exp)
		}
	}
	return c
}

// noSecrets fails when stderr holds any token of the session.
func (r result) noSecrets(t testing.TB, e *cache.Entry) {
	t.Helper()
	if e == nil {
		return
	}
	for _, s := range []string{e.AccessToken, e.RefreshToken, e.IDToken} {
		if s != "" && strings.Contains(r.stderr, s) {
			t.Errorf("a token appears on stderr:\n%s", r.stderr)
		}
	}
}

// userinfo asks the provider who an access token belongs to, proving the
// token is one the provider honours.
func userinfo(t testing.TB, p providertest.Provider, accessToken string) (sub string, status int) {
	t.Helper()
	client := httpClientFor(p)
	resp, err := client.Get(p.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Userinfo string `json:"userinfo_endpoint"`
	}
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	req, _ := http.NewRequest("GET", d.Userinfo, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var u struct {
		Sub string `json:"sub"`
	}
	json.NewDecoder(resp.Body).Decode(&u)
	return u.Sub, resp.StatusCode
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// httpClientFor is a client that trusts the provider's certificate.
func httpClientFor(p providertest.Provider) *http.Client {
	if hc, ok := p.(interface{ HTTPClient() *http.Client }); ok {
		return hc.HTTPClient()
	}
	return http.DefaultClient
}
