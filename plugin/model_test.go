//go:build linux

package plugin_test

// TestSessionModel is a model-based test of one session's life: a seeded
// generator walks random sequences of operations through the real plugin
// binary (pluginBin) against a real rotating provider, and after every
// step checks invariants that must hold whatever the path.
//
// THE WORLD. One npm oidc-provider (providertest.StartNode: refresh tokens
// rotate, and presenting a rotated one again revokes the whole grant)
// issuing access tokens that live 12 s, shared by all sequences. Each
// sequence has its own cache directory (on a small tmpfs when the test runs
// as root, so it can turn read-only), its own $TMPDIR and $XDG_RUNTIME_DIR,
// and its own providertest.FaultProxy between the plugin and the token
// endpoint (--token-endpoint points at the proxy; discovery, device
// authorization and revocation go straight to the provider). Every plugin
// run uses one login identity, so there is one session (one session ID),
// which may live on disk, in the keyring, or both.
//
// THE MODEL is what the test knows for sure, from the outside, before and
// after each step:
//   - the provider's ledger (server.mjs's /__test endpoints): every token
//     it issued, with its value; how often each refresh token was presented
//     and with what result; whether a refresh token would still be honoured;
//   - the proxy's log: which refresh token each request carried, and what
//     answer the plugin got (the provider's, or a fault that replaced it);
//   - "held" tokens: every issued token found, byte for byte, in any file
//     under the cache directory (sessions, temp files .tmp-*, failure notes,
//     index records), $TMPDIR (where today's binary spills sessions) and
//     $XDG_RUNTIME_DIR, or in any keyring item of the cache directory;
//   - the stored session the plugin will read in each --token-cache mode:
//     its access token and expiry, as the plugin wrote them (or as the test
//     rewrote them to move the clock);
//   - which processes the test killed, and which refresh tokens were in
//     flight when it did.
// It does not predict what the plugin will answer; it checks that whatever
// it answered is allowed.
//
// THE OPERATIONS (op names as they appear in the step log):
//   signin        get-token --device-login=always, or login; the test
//                 approves the code at the provider (Provider.Approve).
//   get           one get-token: --device-login=never/auto/always,
//                 background or interactive, with or without
//                 --remember-failure, disk or keyring.
//   burst         2-5 get-token at once.
//   sleep         1-6 s of real time (tokens live 12 s; refresh is due in
//                 the last 6 s).
//   shift         the clock jumps: the session file's issued_at, expiry and
//                 id_token_expiry are rewritten (expired long ago, due for a
//                 refresh but still valid, fresh, or issued in the future).
//   fault         the next refresh is answered by the proxy with one of
//                 providertest.Faults (404 HTML, 307, 400 without an error
//                 code, 500/502/503, invalid_grant, invalid_request, 200
//                 with garbage, a timeout past --request-timeout=2s, a
//                 connection reset); the provider never sees that request.
//   kill-poll     SIGKILL during the polling of a device login (get-token
//                 --device-login=always or login --force), approved or not.
//   kill-refresh  SIGKILL while the proxy holds the refresh: either before
//                 forwarding it (the provider never sees it) or after the
//                 provider answered (the token was rotated, the answer lost).
//   kill-save     SIGKILL at a chosen system call (rename, write, fsync,
//                 unlink) of a refresh or sign-in, aimed with
//                 strace -e inject=SYSCALL:signal=SIGKILL.
//   read-only     the cache directory's file system is remounted ro or rw
//                 (root only; skipped, and logged, otherwise).
//   logout        logout; logout-all: logout --all.
//   login-force   login --force, approved (or denied).
//   logout-race   logout (or logout --all) started while the proxy holds a
//                 refresh in flight, which it then releases.
//   login-race    login --force likewise.
//   future-note   a failure note (ID.failed, cache/failure.go's format)
//                 dated minutes to hours ahead, as left by a run whose clock
//                 was ahead; then get-token.
//   status        status -o json.
//   none          get-token --token-cache=none (a sign-in, nothing kept).
//   keyring-locked  one keyring-mode get-token, login or logout while the
//                 test keyring is locked (keyringtest.Lock), unlocked after.
// Keyring steps run only when keyringtest's programs (dbus-daemon,
// gnome-keyring-daemon, secret-tool) are installed; the log says so.
//
// THE INVARIANTS, checked after every step (a violation names its number):
//  1. No refresh token is presented twice to the provider (counted by the
//     provider). The one exception: a token whose refresh was cut short by
//     a SIGKILL; the plugin cannot know whether the provider got it, and
//     may try it once more.
//  2. A refresh token the provider would still honour is dropped (no
//     longer held anywhere) only after a well-formed OAuth error answer (a
//     JSON body with "error") to its refresh, a logout, a successful
//     login --force, or a SIGKILL that cut its refresh short (one left only
//     in a temp file .tmp-* by a killed write may be swept); a refresh
//     token the provider issued in the step is held afterwards (unless a
//     process was killed in that step, the step logged out, used
//     --token-cache=none, or signed in anew into a read-only cache). And a
//     still-valid access token is never withheld: a get-token that fails
//     while its mode's stored access token was valid for more than 3 s at
//     the start of the step is a violation, whatever the refresh met.
//  3. After a logout (or logout --all) that reports success, no token of
//     the sequence remains anywhere the plugin writes (cache directory
//     including temp files, $TMPDIR, $XDG_RUNTIME_DIR, keyring), and every
//     refresh token held before it, or issued during it, is revoked at the
//     provider. After a successful login --force, the refresh tokens held
//     before it are no longer held, nor honoured by the provider.
//  4. A get-token's stdout is exactly one ExecCredential carrying an access
//     token the provider issued (exit 0), or empty (exit != 0; a killed
//     process may have printed a whole credential); login and logout print
//     nothing on stdout; status prints JSON; no process hangs; and no
//     stdout or stderr ever holds any secret the provider issued (access,
//     refresh and ID tokens, device codes).
//  5. A failure note dated in the future is not believed: when get-token
//     runs after one, with a refresh due and a refresh token the provider
//     honours, the refresh is tried (unless the cache is read-only: then no
//     refresh token may be spent, see invariant 2).
//  6. A session that cannot be read is not signed over: with the keyring
//     locked over a live keyring session, no device login starts (the
//     plugin says the keyring is locked instead).
// A sequence stops at its first violation (later steps would only see its
// consequences); the others go on.
//
// RUNNING. `go test -run TestSessionModel ./plugin/` runs the short run
// (part of make test): 5 sequences of 20 steps, the first with seed 1,
// the others with seeds derived from the time, printed at the start. `make
// stress` (DEVICE_LOGIN_STRESS=1) runs the long one: sequences of 30 steps
// for about 8 minutes. A failure prints the seed, the command that replays
// it, and the step log:
//   DEVICE_LOGIN_MODEL_SEED=1234 DEVICE_LOGIN_MODEL_STEPS=20 go test -count=1 -run TestSessionModel ./plugin/
// The seed fixes every choice the generator makes, given the same abilities
// (root, strace, keyring: the first lines of the log say which were on);
// timing does not repeat exactly, so a replay takes the same path as long
// as the plugin answers the same way. DEVICE_LOGIN_MODEL_SEQUENCES, DEVICE_LOGIN_MODEL_STEPS and
// DEVICE_LOGIN_MODEL_BUDGET (a duration) override the figures;
// DEVICE_LOGIN_MODEL_SKIP_OPS=login-force,login-race leaves ops out (a
// different walk for the same seed), and DEVICE_LOGIN_MODEL_KEEP_GOING=1
// goes on after a violation (later ones may be its consequences).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache/keyringtest"
	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

const (
	// modelTokenTTL is the access (and ID) token lifetime at the provider;
	// the plugin refreshes in the last half of it.
	modelTokenTTL = 12 * time.Second
	// modelSlack: an access token valid for longer than this at the start
	// of a step must not be withheld (it covers --request-timeout and the
	// runs' own time).
	modelSlack = 3 * time.Second
	// modelRequestTimeout is every run's --request-timeout.
	modelRequestTimeout = 2 * time.Second
	// modelRunTimeout: a plugin run that takes longer has hung.
	modelRunTimeout = 60 * time.Second
	// modelInteractive is KUBERNETES_EXEC_INFO of kubectl in a terminal.
	modelInteractive = `KUBERNETES_EXEC_INFO={"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}`
)

func TestSessionModel(t *testing.T) {
	plan := modelPlanFromEnv(t)
	p := providertest.StartNode(t, providertest.Options{
		AccessTokenTTL: modelTokenTTL, IDTokenTTL: modelTokenTTL, DeviceCodeTTL: time.Minute, Interval: time.Second,
	})
	w := &modelWorld{p: p, ledger: p.(providertest.Ledger), secrets: map[string]providertest.IssuedToken{},
		keepGoing: os.Getenv("DEVICE_LOGIN_MODEL_KEEP_GOING") == "1", skip: map[string]bool{}}
	for _, name := range strings.Split(os.Getenv("DEVICE_LOGIN_MODEL_SKIP_OPS"), ",") {
		if name = strings.TrimSpace(name); name != "" {
			w.skip[name] = true
		}
	}
	w.detect(t)

	start := time.Now()
	var steps, failed int
	for i, seed := range plan.seeds {
		if plan.budget > 0 && i > 0 && time.Since(start) > plan.budget {
			t.Logf("time budget of %s spent after %d sequences", plan.budget, i)
			break
		}
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			m := newModelRun(t, w, seed)
			m.walk(plan.steps)
			steps += m.steps
			if len(m.violations) > 0 {
				failed++
			}
		})
		plan.ran++
	}
	t.Logf("session model: %d sequences, %d steps, %d sequences with a violation, in %s (seeds %v)",
		plan.ran, steps, failed, time.Since(start).Round(time.Second), plan.seeds[:plan.ran])
}

// modelPlan is how many sequences of how many steps, with which seeds.
type modelPlan struct {
	seeds  []int64
	steps  int
	budget time.Duration
	ran    int
}

func modelPlanFromEnv(t *testing.T) modelPlan {
	envInt := func(name string, def int) int {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q: want a positive number", name, v)
			}
			return n
		}
		return def
	}
	p := modelPlan{steps: 20}
	sequences := 5
	if os.Getenv("DEVICE_LOGIN_STRESS") == "1" {
		p.steps, sequences, p.budget = 30, 1000, 8*time.Minute
	}
	p.steps = envInt("DEVICE_LOGIN_MODEL_STEPS", p.steps)
	sequences = envInt("DEVICE_LOGIN_MODEL_SEQUENCES", sequences)
	if v := os.Getenv("DEVICE_LOGIN_MODEL_BUDGET"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("DEVICE_LOGIN_MODEL_BUDGET=%q: %v", v, err)
		}
		p.budget = d
	}
	if v := os.Getenv("DEVICE_LOGIN_MODEL_SEED"); v != "" {
		seed, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("DEVICE_LOGIN_MODEL_SEED=%q: %v", v, err)
		}
		p.seeds = []int64{seed}
		t.Logf("replaying seed %d (%d steps)", seed, p.steps)
		return p
	}
	// The first sequence always walks the same path; the others are new
	// in every run.
	p.seeds = []int64{1}
	base := time.Now().UnixNano() % 1_000_000_000
	for i := 1; i < sequences; i++ {
		p.seeds = append(p.seeds, base+int64(i))
	}
	shown := p.seeds
	if len(shown) > 8 {
		shown = shown[:8]
	}
	t.Logf("session model: up to %d sequences of %d steps; seeds %v…; replay one with DEVICE_LOGIN_MODEL_SEED=<seed>", sequences, p.steps, shown)
	return p
}

// modelWorld is what all sequences share: the provider, the test's
// abilities, and every secret the provider issued so far.
type modelWorld struct {
	p      providertest.Provider
	ledger providertest.Ledger

	root       bool   // may mount a tmpfs and remount it read-only
	strace     string // path of a working strace, or ""
	kr         *keyringtest.Keyring
	keyringEnv []string

	ledgerNext int
	secrets    map[string]providertest.IssuedToken // by value

	keepGoing bool            // DEVICE_LOGIN_MODEL_KEEP_GOING=1: go on after a violation
	skip      map[string]bool // DEVICE_LOGIN_MODEL_SKIP_OPS: ops left out
}

// detect finds out which operations can run here, and says so.
func (w *modelWorld) detect(t *testing.T) {
	if os.Geteuid() == 0 {
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Logf("read-only steps: OFF (root, but cannot mount a tmpfs: %v: %s)", err, strings.TrimSpace(string(out)))
		} else {
			exec.Command("umount", dir).Run()
			w.root = true
			t.Logf("read-only steps: on (root: the cache directory is a tmpfs remounted ro/rw)")
		}
	} else {
		t.Logf("read-only steps: OFF (not root: remounting a file system read-only needs root; chmod does not stop root and is not what users meet)")
	}
	if path, err := exec.LookPath("strace"); err != nil {
		t.Logf("kill-save steps: OFF (no strace on PATH)")
	} else if out, err := exec.Command(path, "-f", "-qq", "-o", "/dev/null", "true").CombinedOutput(); err != nil {
		t.Logf("kill-save steps: OFF (strace cannot trace here: %v: %s)", err, strings.TrimSpace(string(out)))
	} else {
		w.strace = path
		t.Logf("kill-save steps: on (%s -e inject=…:signal=SIGKILL)", path)
	}
	var missing []string
	for _, p := range []string{"dbus-daemon", "gnome-keyring-daemon", "secret-tool"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		t.Logf("keyring steps: OFF (not installed: %s; %s)", strings.Join(missing, ", "), keyringtest.Install)
		// No keyring steps, and no way for a stray keyring access to reach
		// the keyring of the person running the test.
		w.keyringEnv = []string{"DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/model-test-bus"}
	} else {
		w.kr = keyringtest.Start(t)
		w.keyringEnv = w.kr.Env()
		t.Logf("keyring steps: on (%s)", w.kr)
	}
}

// catchUp reads what the provider issued since the last call.
func (w *modelWorld) catchUp(t *testing.T) []providertest.IssuedToken {
	t.Helper()
	issued, next, err := w.ledger.Issued(context.Background(), w.ledgerNext)
	if err != nil {
		t.Fatalf("reading the provider's ledger: %v", err)
	}
	w.ledgerNext = next
	for _, it := range issued {
		w.secrets[it.Value] = it
	}
	return issued
}

// modelRun is one sequence.
type modelRun struct {
	t     *testing.T
	w     *modelWorld
	rng   *rand.Rand
	seed  int64
	proxy *providertest.FaultProxy

	dir, tmp, runtime string // cache dir, $TMPDIR, $XDG_RUNTIME_DIR
	mnt               string // the tmpfs holding dir, when root
	id                string // the session ID
	readOnly          bool
	keyringLocked     bool

	seqSecrets  map[string]providertest.IssuedToken // issued during this sequence
	interrupted map[string]bool                     // refresh token SHA-256s whose refresh a kill cut short
	replays     map[string]bool                     // SHA-256s already reported or tolerated for invariant 1
	last        *modelSnapshot                      // after the previous step
	seqStart    int                                 // the ledger's index when the sequence began

	steps      int
	log        []string
	violations []string
}

func newModelRun(t *testing.T, w *modelWorld, seed int64) *modelRun {
	m := &modelRun{t: t, w: w, seed: seed, rng: rand.New(rand.NewSource(seed)),
		seqSecrets: map[string]providertest.IssuedToken{}, interrupted: map[string]bool{}, replays: map[string]bool{}}
	m.proxy = providertest.NewFaultProxy(t, w.p.Issuer(), nil)
	base := t.TempDir()
	m.tmp, m.runtime = filepath.Join(base, "tmp"), filepath.Join(base, "run")
	for _, d := range []string{m.tmp, m.runtime} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	m.dir = filepath.Join(base, "cache")
	if w.root {
		m.mnt = filepath.Join(base, "mnt")
		os.Mkdir(m.mnt, 0o700)
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", m.mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", m.mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", m.mnt, err, out)
			}
		})
		m.dir = filepath.Join(m.mnt, "cache")
	}
	m.id = keyID(w.p.Issuer(), w.p.ClientID())
	w.catchUp(t)
	m.seqStart = w.ledgerNext
	return m
}

// walk runs the sequence: a sign-in, then n-1 random steps.
func (m *modelRun) walk(n int) {
	defer m.cleanup()
	for m.steps < n && (len(m.violations) == 0 || m.w.keepGoing) {
		name, op := "signin", modelOpSignIn
		if m.steps > 0 {
			name, op = m.pick()
		}
		time.Sleep(time.Duration(m.rng.Intn(600)) * time.Millisecond)
		m.steps++
		st := &modelStep{n: m.steps, op: name, mode: "disk"}
		m.begin(st)
		op(m, st)
		m.finish(st)
	}
	if len(m.violations) > 0 {
		m.t.Errorf("%s\n\nreplay: %s\nstep log of seed %d:\n%s",
			strings.Join(m.violations, "\n"), m.replay(n), m.seed, strings.Join(m.log, "\n"))
	} else {
		m.t.Logf("seed %d: %d steps, no violation\n%s", m.seed, m.steps, strings.Join(m.log, "\n"))
	}
}

// replay is the command that walks this sequence again.
func (m *modelRun) replay(steps int) string {
	env := fmt.Sprintf("DEVICE_LOGIN_MODEL_SEED=%d DEVICE_LOGIN_MODEL_STEPS=%d", m.seed, steps)
	if v := os.Getenv("DEVICE_LOGIN_MODEL_SKIP_OPS"); v != "" {
		env += " DEVICE_LOGIN_MODEL_SKIP_OPS=" + v
	}
	return env + " go test -count=1 -run 'TestSessionModel' ./plugin/ (as root, with strace and the keyring programs when this run had them)"
}

func (m *modelRun) cleanup() {
	for _, a := range m.proxy.Disarm() {
		a.Release()
	}
	if m.readOnly {
		m.remount("rw")
	}
}

// modelOp is one kind of step. Ops call m.begin again when they prepared
// something (a clock shift, a fault) before the plugin runs.
type modelOp func(m *modelRun, st *modelStep)

type weightedOp struct {
	name   string
	weight int
	op     modelOp
	needs  func(*modelWorld) bool
}

var modelOps = []weightedOp{
	{"get", 18, modelOpGet, nil},
	{"burst", 6, modelOpBurst, nil},
	{"sleep", 5, modelOpSleep, nil},
	{"shift", 8, modelOpShift, nil},
	{"fault", 16, modelOpFault, nil},
	{"kill-poll", 3, modelOpKillPoll, nil},
	{"kill-refresh", 5, modelOpKillRefresh, nil},
	{"kill-save", 5, modelOpKillSave, func(w *modelWorld) bool { return w.strace != "" }},
	{"read-only", 5, modelOpReadOnly, func(w *modelWorld) bool { return w.root }},
	{"logout", 3, modelOpLogout, nil},
	{"logout-all", 2, modelOpLogoutAll, nil},
	{"login-force", 3, modelOpLoginForce, nil},
	{"logout-race", 2, modelOpLogoutRace, nil},
	{"login-race", 2, modelOpLoginRace, nil},
	{"future-note", 3, modelOpFutureNote, nil},
	{"status", 2, modelOpStatus, nil},
	{"none", 2, modelOpNone, nil},
	{"keyring-locked", 1, modelOpKeyringLocked, func(w *modelWorld) bool { return w.kr != nil }},
}

// pick chooses the next op; without a session, most often a sign-in.
func (m *modelRun) pick() (string, modelOp) {
	r := m.rng.Float64()
	if !m.last.hasSession() && r < 0.6 {
		return "signin", modelOpSignIn
	}
	usable := func(o weightedOp) bool { return !m.w.skip[o.name] && (o.needs == nil || o.needs(m.w)) }
	total := 0
	for _, o := range modelOps {
		if usable(o) {
			total += o.weight
		}
	}
	n := m.rng.Intn(total)
	for _, o := range modelOps {
		if !usable(o) {
			continue
		}
		if n < o.weight {
			return o.name, o.op
		}
		n -= o.weight
	}
	panic("unreachable")
}

// modelStep is one step: what ran and what the model saw around it.
type modelStep struct {
	n       int
	op      string
	mode    string // --token-cache of its runs
	mu      sync.Mutex
	notes   []string
	runs    []*modelRunResult
	started time.Time
	before  *modelSnapshot
	exFrom  int

	killed        bool // a plugin process was killed in this step
	logout        bool // a logout or logout --all ran
	loginForce    bool // a login --force ran
	noneMode      bool // its runs used --token-cache=none
	futureNote    bool // get-token runs after a failure note from the future
	keyringLocked bool // its run met a locked keyring
	roAtStart     bool
}

func (st *modelStep) note(format string, args ...any) {
	st.mu.Lock() // approvals note from their own goroutines
	defer st.mu.Unlock()
	st.notes = append(st.notes, fmt.Sprintf(format, args...))
}

// modelRunResult is one plugin process.
type modelRunResult struct {
	kind   string // get-token, login, logout, status
	mode   string
	args   []string
	res    result
	killed bool
	hung   bool
}

// begin takes the "before" picture of a step.
func (m *modelRun) begin(st *modelStep) {
	m.w.catchUp(m.t)
	st.before = m.observe()
	st.started = time.Now()
	st.exFrom = len(m.proxy.Exchanges(0))
	st.roAtStart = m.readOnly
}

// ---- the operations ----

func (m *modelRun) chooseMode(st *modelStep) string {
	st.mode = "disk"
	if m.w.kr != nil && m.rng.Intn(10) < 3 {
		st.mode = "keyring"
	}
	return st.mode
}

func modelOpSignIn(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	if m.rng.Intn(2) == 0 {
		m.run(st, "get-token", mode, m.getArgs(mode, "--device-login=always"), true)
	} else {
		m.run(st, "login", mode, m.identityArgs("login", mode), true)
	}
}

func modelOpGet(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	dl := []string{"never", "never", "never", "auto", "always"}[m.rng.Intn(5)]
	args := m.getArgs(mode, "--device-login="+dl)
	if m.rng.Intn(2) == 0 {
		args = append(args, "--remember-failure=0")
	}
	env := []string{nonInteractive}
	if m.rng.Intn(3) == 0 {
		env = []string{modelInteractive}
	}
	m.runEnv(st, "get-token", mode, args, dl != "never", env)
}

func modelOpBurst(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	n := 2 + m.rng.Intn(4)
	if m.rng.Intn(2) == 0 {
		m.shiftTo(st, m.pickShift())
		m.begin(st)
	}
	st.note("%d processes", n)
	procs := make([]*proc, n)
	args := m.getArgs(mode, "--device-login=never")
	ctx := testContext(m.t, modelRunTimeout)
	for i := range procs {
		procs[i] = startPlugin(m.t, ctx, args, m.env(nonInteractive)...)
	}
	for _, p := range procs {
		m.record(st, "get-token", mode, args, p.wait(), false)
	}
}

func modelOpSleep(m *modelRun, st *modelStep) {
	d := time.Second + time.Duration(m.rng.Intn(5000))*time.Millisecond
	st.note("%s of real time", d.Round(100*time.Millisecond))
	time.Sleep(d)
}

// Clock shifts, as rewrites of the session file.
const (
	shiftExpired = "expired a while ago"
	shiftDue     = "refresh due, token still valid 3.5-5.5 s"
	shiftFresh   = "fresh"
	shiftFuture  = "issued in the future (the clock went back)"
)

func (m *modelRun) pickShift() string {
	return []string{shiftExpired, shiftExpired, shiftDue, shiftDue, shiftFresh, shiftFuture}[m.rng.Intn(6)]
}

func modelOpShift(m *modelRun, st *modelStep) { m.shiftTo(st, m.pickShift()) }

// shiftTo rewrites the session file's times; the token keeps a 12 s
// lifetime, so the plugin's refresh margin stays 6 s.
func (m *modelRun) shiftTo(st *modelStep, kind string) bool {
	now := time.Now()
	var expiry time.Time
	switch kind {
	case shiftExpired:
		expiry = now.Add(-time.Duration(1+m.rng.Intn(300)) * time.Second)
	case shiftDue:
		expiry = now.Add(3500*time.Millisecond + time.Duration(m.rng.Intn(2000))*time.Millisecond)
	case shiftFresh:
		expiry = now.Add(8*time.Second + time.Duration(m.rng.Intn(3000))*time.Millisecond)
	case shiftFuture:
		expiry = now.Add(time.Duration(10+m.rng.Intn(120)) * time.Minute)
	}
	issued := expiry.Add(-modelTokenTTL)
	defer m.writable()()
	path := filepath.Join(m.dir, m.id+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		st.note("clock shift (%s) skipped: no session file", kind)
		return false
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(data, &f); err != nil {
		st.note("clock shift (%s) skipped: the session file is not JSON", kind)
		return false
	}
	set := func(k string, v time.Time) { f[k], _ = json.Marshal(v.UTC()) }
	set("issued_at", issued)
	set("expiry", expiry)
	if _, ok := f["id_token_expiry"]; ok {
		set("id_token_expiry", expiry)
	}
	out, _ := json.MarshalIndent(f, "", "  ")
	tmp := filepath.Join(m.dir, "model-test-shift")
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		m.t.Fatal(err)
	}
	st.note("clock shift: %s (expiry %+.1fs)", kind, expiry.Sub(now).Seconds())
	return true
}

// refreshDue makes the next get-token refresh: expired, or due but valid.
func (m *modelRun) refreshDue(st *modelStep) {
	if m.rng.Intn(2) == 0 {
		m.shiftTo(st, shiftExpired)
	} else {
		m.shiftTo(st, shiftDue)
	}
}

func modelOpFault(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	f := providertest.Faults[m.rng.Intn(len(providertest.Faults))]
	m.refreshDue(st)
	m.proxy.Arm(providertest.Rule{GrantType: "refresh_token", Fault: f})
	st.note("fault: %s", f)
	dl := "never"
	if m.rng.Intn(4) == 0 {
		dl = "always"
	}
	m.begin(st)
	m.run(st, "get-token", mode, m.getArgs(mode, "--device-login="+dl, "--remember-failure=0"), dl == "always")
}

func modelOpKillPoll(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	args := m.getArgs(mode, "--device-login=always")
	kind := "get-token"
	if m.rng.Intn(2) == 0 {
		kind, args = "login", append(m.identityArgs("login", mode), "--force")
		st.loginForce = true
	}
	approve := m.rng.Intn(2) == 0
	delay := time.Duration(m.rng.Intn(2500)) * time.Millisecond
	st.note("%s killed %s after the code appeared (approved: %t)", kind, delay, approve)
	ctx := testContext(m.t, modelRunTimeout)
	p := startPlugin(m.t, ctx, args, m.env()...)
	waitUntil(ctx, "the user code", func() bool { return userCodeRE.MatchString(p.stderr.String()) || p.exited() })
	if sm := userCodeRE.FindStringSubmatch(p.stderr.String()); sm != nil && approve {
		if err := m.w.p.Approve(ctx, sm[1]); err != nil {
			st.note("approve: %v", err)
		}
	}
	time.Sleep(delay)
	m.kill(st, p, kind, mode, args)
}

func (m *modelRun) kill(st *modelStep, p *proc, kind, mode string, args []string) {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	r := p.wait()
	killed := r.exit == -1 // by a signal, not by itself
	st.killed = st.killed || killed
	m.record(st, kind, mode, args, r, killed)
}

func modelOpKillRefresh(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	m.refreshDue(st)
	hold := providertest.HoldRequest
	if m.rng.Intn(2) == 0 {
		hold = providertest.HoldAnswer
	}
	st.note("refresh held (%s), then SIGKILL", map[providertest.Hold]string{providertest.HoldRequest: "before the provider", providertest.HoldAnswer: "after the provider answered"}[hold])
	a := m.proxy.Arm(providertest.Rule{GrantType: "refresh_token", Hold: hold})
	m.begin(st)
	args := m.getArgs(mode, "--device-login=never")
	ctx := testContext(m.t, modelRunTimeout)
	p := startPlugin(m.t, ctx, args, m.env(nonInteractive)...)
	select {
	case <-a.Held():
	case <-p.done:
		st.note("the plugin did not refresh")
	case <-time.After(20 * time.Second):
		st.note("no refresh within 20 s")
	}
	m.kill(st, p, "get-token", mode, args)
	select {
	case <-a.ClientGone():
	case <-time.After(2 * time.Second):
	}
	a.Release()
	m.settle(a)
}

// settle waits for a held exchange to end and drops unused rules.
func (m *modelRun) settle(a *providertest.Armed) {
	select {
	case <-a.Held():
		select {
		case <-a.Done():
		case <-time.After(10 * time.Second):
		}
	default:
	}
	for _, r := range m.proxy.Disarm() {
		r.Release()
	}
}

// modelSyscalls are where kill-save aims: the last steps of a save, and a
// delete.
var modelSyscalls = []struct{ name, set string }{
	{"rename", "rename,renameat,renameat2"},
	{"write", "write"},
	{"fsync", "fsync,fdatasync"},
	{"unlink", "unlink,unlinkat"},
}

func modelOpKillSave(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	sc := modelSyscalls[m.rng.Intn(len(modelSyscalls))]
	when := 1 + m.rng.Intn(3)
	kind, args, approve := "get-token", m.getArgs(mode, "--device-login=never"), false
	if m.rng.Intn(4) == 0 {
		kind, args, approve = "login", append(m.identityArgs("login", mode), "--force"), true
		st.loginForce = true
	} else {
		m.refreshDue(st)
	}
	st.note("%s under strace: SIGKILL at %s call #%d", kind, sc.name, when)
	m.begin(st)
	sargs := append([]string{"-f", "-qq", "-o", "/dev/null", "-e", "trace=" + sc.set,
		"-e", fmt.Sprintf("inject=%s:signal=SIGKILL:when=%d", sc.set, when), pluginBin}, args...)
	inv := invocation{args: sargs, env: m.env(nonInteractive)}
	if approve {
		inv.onCode = m.approve(st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), modelRunTimeout)
	defer cancel()
	r := runBinary(m.t, ctx, m.w.strace, inv)
	killed := r.exit == -1 || r.exit == 137
	if killed {
		st.killed = true
	}
	m.record(st, kind, mode, args, r, killed)
}

func modelOpReadOnly(m *modelRun, st *modelStep) {
	if m.readOnly {
		m.remount("rw")
		st.note("cache directory writable again")
	} else {
		m.remount("ro")
		st.note("cache directory read-only")
	}
}

// writable lets the test itself write to a read-only cache for a moment
// (between plugin runs, so no run sees it writable); call what it returns
// to make it read-only again.
func (m *modelRun) writable() (restore func()) {
	if !m.readOnly {
		return func() {}
	}
	m.remount("rw")
	return func() { m.remount("ro") }
}

func (m *modelRun) remount(how string) {
	if out, err := exec.Command("mount", "-o", "remount,"+how, m.mnt).CombinedOutput(); err != nil {
		m.t.Fatalf("remount %s: %v: %s", how, err, out)
	}
	m.readOnly = how == "ro"
}

func modelOpLogout(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	st.logout = true
	m.run(st, "logout", mode, m.identityArgs("logout", mode), false)
}

func modelOpLogoutAll(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	st.logout = true
	m.run(st, "logout", mode, m.allArgs(mode), false)
}

func modelOpLoginForce(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	st.loginForce = true
	args := append(m.identityArgs("login", mode), "--force")
	if m.rng.Intn(5) == 0 {
		st.note("the sign-in is denied")
		inv := invocation{args: args, env: m.env(), onCode: func(code string) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			m.w.p.Deny(ctx, code)
		}}
		m.record(st, "login", mode, args, m.invoke(inv), false)
		return
	}
	m.run(st, "login", mode, args, true)
}

func modelOpLogoutRace(m *modelRun, st *modelStep) {
	all := m.rng.Intn(3) == 0
	m.race(st, func(mode string) (string, []string, bool) {
		st.logout = true
		if all {
			return "logout", m.allArgs(mode), false
		}
		return "logout", m.identityArgs("logout", mode), false
	})
}

func modelOpLoginRace(m *modelRun, st *modelStep) {
	m.race(st, func(mode string) (string, []string, bool) {
		st.loginForce = true
		return "login", append(m.identityArgs("login", mode), "--force"), true
	})
}

// race runs the second command while the proxy holds a get-token's refresh
// in flight, then releases the refresh.
func (m *modelRun) race(st *modelStep, second func(mode string) (kind string, args []string, approve bool)) {
	mode := m.chooseMode(st)
	m.refreshDue(st)
	hold := providertest.HoldAnswer
	if m.rng.Intn(3) == 0 {
		hold = providertest.HoldRequest
	}
	a := m.proxy.Arm(providertest.Rule{GrantType: "refresh_token", Hold: hold})
	m.begin(st)
	gargs := m.getArgs(mode, "--device-login=never")
	ctx := testContext(m.t, modelRunTimeout)
	g := startPlugin(m.t, ctx, gargs, m.env(nonInteractive)...)
	select {
	case <-a.Held():
	case <-g.done:
	case <-time.After(20 * time.Second):
	}
	kind, args, approve := second(mode)
	held := !g.exited()
	st.note("%s started while the refresh is held (%t, %s)", kind, held, map[providertest.Hold]string{providertest.HoldRequest: "before the provider", providertest.HoldAnswer: "after the provider answered"}[hold])
	var wg sync.WaitGroup
	var r result
	wg.Add(1)
	go func() {
		defer wg.Done()
		inv := invocation{args: args, env: m.env()}
		if approve {
			inv.onCode = m.approve(st)
		}
		r = m.invoke(inv)
	}()
	time.Sleep(time.Second)
	a.Release()
	m.record(st, "get-token", mode, gargs, g.wait(), false)
	wg.Wait()
	m.record(st, kind, mode, args, r, false)
	m.settle(a)
}

func modelOpFutureNote(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	restore := m.writable()
	ahead := time.Duration(1+m.rng.Intn(180)) * time.Minute
	parent := os.Getpid() // the plugin's parent: kubectl's re-runs
	if m.rng.Intn(2) == 0 {
		parent = 1 + m.rng.Intn(1<<20)
	}
	note, _ := json.Marshal(map[string]any{"time": time.Now().Add(ahead).UTC(), "parent": parent,
		"message": "a failure the model test dated in the future"})
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, m.id+".failed"), note, 0o600); err != nil {
		m.t.Fatal(err)
	}
	restore()
	m.refreshDue(st)
	st.note("failure note dated %s ahead", ahead)
	st.futureNote = true
	env := nonInteractive
	if m.rng.Intn(2) == 0 {
		env = modelInteractive
	}
	m.begin(st)
	m.runEnv(st, "get-token", mode, m.getArgs(mode, "--device-login=never"), false, []string{env})
}

func modelOpStatus(m *modelRun, st *modelStep) {
	mode := m.chooseMode(st)
	m.run(st, "status", mode, []string{"status", "-o", "json", "--cache-dir=" + m.dir, "--token-cache=" + mode}, false)
}

func modelOpNone(m *modelRun, st *modelStep) {
	st.mode, st.noneMode = "none", true
	m.run(st, "get-token", "none", m.getArgs("none", "--device-login=always"), true)
}

// modelOpKeyringLocked runs one keyring-mode command against a locked
// keyring, then unlocks it: each run waits out the plugin's 30 s keyring
// timeout (an unlock prompt nobody answers), so the lock lasts one run.
func modelOpKeyringLocked(m *modelRun, st *modelStep) {
	st.mode = "keyring"
	var kind string
	var args []string
	approve := false
	switch m.rng.Intn(3) {
	case 0:
		kind, args = "get-token", m.getArgs("keyring", "--device-login=never")
		m.refreshDue(st)
	case 1:
		kind, args, approve = "login", m.identityArgs("login", "keyring"), true
	case 2:
		kind, args = "logout", m.identityArgs("logout", "keyring")
		st.logout = true
	}
	m.w.kr.Lock(m.t)
	m.keyringLocked, st.keyringLocked = true, true
	st.note("keyring locked for this run")
	m.begin(st)
	m.run(st, kind, "keyring", args, approve)
	m.w.kr.Unlock(m.t)
	m.keyringLocked = false
}

// ---- running the plugin ----

func (m *modelRun) identityArgs(cmd, mode string) []string {
	args := []string{cmd, "--issuer-url=" + m.w.p.Issuer(), "--client-id=" + m.w.p.ClientID(), "--cache-dir=" + m.dir,
		"--token-cache=" + mode, "--token-endpoint=" + m.proxy.URL() + "/token",
		"--request-timeout=" + modelRequestTimeout.String()}
	if cmd != "logout" {
		args = append(args, "--lock-timeout=30s")
	}
	return args
}

func (m *modelRun) getArgs(mode string, more ...string) []string {
	return append(m.identityArgs("get-token", mode), more...)
}

func (m *modelRun) allArgs(mode string) []string {
	return []string{"logout", "--all", "--cache-dir=" + m.dir, "--token-cache=" + mode, "--request-timeout=" + modelRequestTimeout.String()}
}

func (m *modelRun) env(more ...string) []string {
	env := append([]string{"TMPDIR=" + m.tmp, "XDG_RUNTIME_DIR=" + m.runtime}, m.w.keyringEnv...)
	return append(env, more...)
}

func (m *modelRun) approve(st *modelStep) func(string) {
	return func(code string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.w.p.Approve(ctx, code); err != nil {
			st.note("approving %s: %v", code, err)
		}
	}
}

func (m *modelRun) run(st *modelStep, kind, mode string, args []string, approve bool) {
	m.runEnv(st, kind, mode, args, approve, []string{nonInteractive})
}

func (m *modelRun) runEnv(st *modelStep, kind, mode string, args []string, approve bool, env []string) {
	inv := invocation{args: args, env: m.env(env...)}
	if approve {
		inv.onCode = m.approve(st)
	}
	m.record(st, kind, mode, args, m.invoke(inv), false)
}

func (m *modelRun) invoke(inv invocation) result {
	ctx, cancel := context.WithTimeout(context.Background(), modelRunTimeout)
	defer cancel()
	r := runPlugin(m.t, ctx, inv)
	if ctx.Err() != nil {
		r.exit = -3 // hung: killed by the test
	}
	return r
}

func (m *modelRun) record(st *modelStep, kind, mode string, args []string, r result, killed bool) {
	st.runs = append(st.runs, &modelRunResult{kind: kind, mode: mode, args: args, res: r, killed: killed, hung: r.exit == -3})
}

// ---- observing ----

// modelSnapshot is where tokens are, at one moment.
type modelSnapshot struct {
	// found maps each secret of the sequence to the places it was found
	// in (file paths, or "keyring item ACCOUNT").
	found map[string][]string
	// stored is the session each --token-cache mode would read.
	stored map[string]*modelSession
	// inKeyring is the keyring's session, readable or not.
	inKeyring *modelSession
}

// modelSession is the part of a session file the model reads.
type modelSession struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	Expiry       time.Time `json:"expiry"`
	IssuedAt     time.Time `json:"issued_at"`
	where        string
}

func (s *modelSnapshot) hasSession() bool {
	if s == nil {
		return false
	}
	for _, e := range s.stored {
		if e != nil && e.RefreshToken != "" {
			return true
		}
	}
	return false
}

// heldRefreshTokens are the refresh tokens found anywhere.
func (m *modelRun) heldRefreshTokens(s *modelSnapshot) map[string]string {
	h := map[string]string{}
	for v, places := range s.found {
		where := places[0]
		if m.seqSecrets[v].Kind == "refresh_token" {
			h[v] = where
		}
	}
	return h
}

// observe looks for every secret of the sequence in every place the plugin
// writes, and reads the stored sessions.
func (m *modelRun) observe() *modelSnapshot {
	for v, it := range m.w.secrets {
		if _, ok := m.seqSecrets[v]; !ok && it.Seq >= m.seqStart {
			m.seqSecrets[v] = it
		}
	}
	s := &modelSnapshot{found: map[string][]string{}, stored: map[string]*modelSession{}}
	look := func(where, content string) {
		for v := range m.seqSecrets {
			if strings.Contains(content, v) {
				s.found[v] = append(s.found[v], where)
			}
		}
	}
	for _, root := range []string{m.dir, m.tmp, m.runtime} {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if data, err := readLimited(path, 4<<20); err == nil {
				look(path, string(data))
			}
			return nil
		})
	}
	disk := m.readSession(filepath.Join(m.dir, m.id+".json"))
	s.stored["disk"] = disk
	if m.w.kr != nil {
		if m.keyringLocked {
			m.w.kr.Unlock(m.t)
		}
		service := "kubectl-device-login:" + m.dir
		items := map[string]string{}
		for _, acc := range m.w.kr.Accounts(m.t, service) {
			if v, ok := m.w.kr.Lookup(m.t, service, acc); ok {
				items[acc] = v
				look("keyring item "+acc, v)
			}
		}
		if m.keyringLocked {
			m.w.kr.Lock(m.t)
		}
		// What --token-cache=keyring reads: the newer of the keyring's
		// session (when the keyring can be read) and the disk file.
		kr := disk
		ke := modelKeyringSession(items, m.id)
		if ke != nil && !m.keyringLocked && (kr == nil || !kr.IssuedAt.After(ke.IssuedAt)) {
			kr = ke
		}
		s.inKeyring = ke
		s.stored["keyring"] = kr
	}
	return s
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

func (m *modelRun) readSession(path string) *modelSession {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var e modelSession
	if json.Unmarshal(data, &e) != nil {
		return nil
	}
	e.where = path
	return &e
}

// modelKeyringSession puts a keyring session together from its items
// (see keyringData).
func modelKeyringSession(items map[string]string, id string) *modelSession {
	data, _, err := keyringData(func(account string) (string, bool) { v, ok := items[account]; return v, ok }, id)
	if err != nil {
		return nil
	}
	var e modelSession
	if json.Unmarshal([]byte(data), &e) != nil {
		return nil
	}
	e.where = "keyring item " + id
	return &e
}

// ---- checking ----

// finish takes the "after" picture and checks every invariant.
func (m *modelRun) finish(st *modelStep) {
	for _, a := range m.proxy.Disarm() { // rules the step did not use
		a.Release()
	}
	issued := m.w.catchUp(m.t)
	after := m.observe()
	ex := m.proxy.Exchanges(st.exFrom)
	defer func() { m.last = after }()
	ctx := context.Background()
	state := func(v string) providertest.RefreshTokenState {
		s, err := m.w.ledger.RefreshTokenState(ctx, sha256Hex(v))
		if err != nil {
			m.t.Fatal(err)
		}
		return s
	}
	short := func(v string) string { return "RT " + sha256Hex(v)[:10] }
	var problems []string
	fail := func(inv int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("invariant %d: ", inv)+fmt.Sprintf(format, args...))
	}

	// Refresh tokens whose refresh a kill cut short: the plugin was killed
	// while it was in flight or before it had acted on the answer (saved
	// the new token, or dropped the refused one). Marked for the next
	// steps only.
	defer func() {
		if !st.killed {
			return
		}
		for _, x := range ex {
			if x.RefreshTokenSHA256 != "" && (x.ClientGone || x.Forwarded) {
				m.interrupted[x.RefreshTokenSHA256] = true
			}
		}
	}()
	oauthErr := map[string]string{}
	for _, x := range ex {
		if x.RefreshTokenSHA256 != "" && x.OAuthError != "" && !x.ClientGone {
			oauthErr[x.RefreshTokenSHA256] = x.OAuthError
		}
	}

	// 1. No refresh token presented twice.
	pres, err := m.w.ledger.Presentations(ctx)
	if err != nil {
		m.t.Fatal(err)
	}
	for sha, p := range pres {
		if p.Presented < 2 || m.replays[sha] {
			continue
		}
		it, ours := m.bySHA(sha)
		if !ours {
			continue
		}
		m.replays[sha] = true
		if m.interrupted[sha] && p.Presented == 2 {
			st.note("tolerated: %s presented again after a kill cut its refresh short (%v)", short(it.Value), p.Errors)
			continue
		}
		fail(1, "%s was presented %d times to the provider (%d succeeded; errors %v); a rotating provider revokes the whole session on the second", short(it.Value), p.Presented, p.Succeeded, p.Errors)
	}

	loginForceOK := false
	for _, r := range st.runs {
		if r.kind == "login" && st.loginForce && r.res.exit == 0 && !r.killed {
			loginForceOK = true
		}
	}
	logoutOK := false
	for _, r := range st.runs {
		if r.kind == "logout" && r.res.exit == 0 {
			logoutOK = true
		}
	}

	// 2. Refresh tokens are dropped only for a reason...
	heldBefore, heldAfter := m.heldRefreshTokens(st.before), m.heldRefreshTokens(after)
	for v, where := range heldBefore {
		if _, ok := heldAfter[v]; ok {
			continue
		}
		sha := sha256Hex(v)
		switch {
		case st.logout, loginForceOK, m.interrupted[sha], oauthErr[sha] != "":
			continue
		case m.onlyInTempFiles(st.before.found[v]):
			st.note("swept: %s, left in a temp file by a killed write", short(v))
			continue
		}
		if s := state(v); s.Active {
			fail(2, "%s (held in %s) was dropped while the provider still honours it, without an OAuth error answer to its refresh (the plugin's answers this step: %s)", short(v), where, m.answers(ex, sha))
		}
	}
	// ...and the ones issued in this step are kept.
	if !st.killed && !st.logout && !st.noneMode {
		for _, it := range issued {
			if it.Kind != "refresh_token" {
				continue
			}
			if _, ok := heldAfter[it.Value]; ok {
				continue
			}
			if st.roAtStart && it.GrantType != "refresh_token" {
				continue // a new sign-in into a read-only cache has nowhere to go
			}
			if loginForceOK && it.GrantType == "refresh_token" {
				continue // replaced by the new sign-in: checked under 3
			}
			if s := state(it.Value); s.Active {
				fail(2, "%s, issued in this step by a %s grant, is kept nowhere while the provider honours it (the session it continued is lost)", short(it.Value), it.GrantType)
			}
		}
	}
	// ...and a valid access token is never withheld.
	for _, r := range st.runs {
		if r.kind != "get-token" || r.killed || r.mode == "none" || r.res.exit == 0 {
			continue
		}
		if e := st.before.stored[r.mode]; e != nil && e.AccessToken != "" && e.Expiry.Sub(st.started) > modelSlack {
			fail(2, "get-token (%s) failed (exit %d: %s) although the stored access token (%s) was valid for %.1f s more at the start of the step",
				r.mode, r.res.exit, stderrGist(r.res.stderr), e.where, e.Expiry.Sub(st.started).Seconds())
		}
	}

	// 3. After a logout, nothing is left anywhere, and all is revoked.
	if st.logout && logoutOK {
		var left []string
		for v, places := range after.found {
			for _, where := range places {
				left = append(left, fmt.Sprintf("%s in %s", m.seqSecrets[v].Kind, m.place(where)))
			}
		}
		sort.Strings(left)
		if len(left) > 0 {
			fail(3, "after a successful logout, tokens remain: %s", strings.Join(left, "; "))
		}
		revoke := map[string]bool{}
		for v := range heldBefore {
			revoke[v] = true
		}
		for _, it := range issued {
			if it.Kind == "refresh_token" {
				revoke[it.Value] = true
			}
		}
		for v := range revoke {
			if s := state(v); s.Active {
				fail(3, "after a successful logout, %s (held before, or issued during the logout) is still honoured by the provider", short(v))
			}
		}
	}
	if st.loginForce && loginForceOK && !st.logout {
		// The old session: what was held before, and what a racing
		// refresh got during the step.
		old := map[string]string{}
		for v, where := range heldBefore {
			old[v] = "held in " + m.place(where)
		}
		for _, it := range issued {
			if it.Kind == "refresh_token" && it.GrantType == "refresh_token" {
				old[it.Value] = "issued by a refresh during the login"
			}
		}
		for v, what := range old {
			if w, ok := heldAfter[v]; ok {
				fail(3, "after a successful login --force, the old %s (%s) is still kept in %s", short(v), what, m.place(w))
			} else if s := state(v); s.Active {
				fail(3, "after a successful login --force, the old %s (%s) was not revoked: the provider still honours it", short(v), what)
			}
		}
	}

	// 4. Outputs.
	for i, r := range st.runs {
		name := fmt.Sprintf("run %d (%s)", i+1, r.kind)
		if r.hung {
			fail(4, "%s did not finish within %s", name, modelRunTimeout)
			continue
		}
		for v, it := range m.w.secrets {
			if len(v) < 8 {
				continue
			}
			if strings.Contains(r.res.stderr, v) {
				fail(4, "%s: a %s appears on stderr", name, it.Kind)
			}
			if r.kind != "get-token" && strings.Contains(r.res.stdout, v) {
				fail(4, "%s: a %s appears on stdout", name, it.Kind)
			}
		}
		switch r.kind {
		case "get-token":
			if r.res.exit != 0 && r.res.stdout == "" {
				continue
			}
			if r.res.exit != 0 && !r.killed {
				fail(4, "%s: exit %d with output on stdout: %q", name, r.res.exit, r.res.stdout)
				continue
			}
			tok, err := execCredentialToken(r.res.stdout)
			if err != nil {
				fail(4, "%s: exit %d, stdout is not exactly one ExecCredential: %v: %q", name, r.res.exit, err, r.res.stdout)
			} else if m.w.secrets[tok].Kind != "access_token" {
				fail(4, "%s: the credential carries a token the provider never issued as an access token (%q…)", name, tok[:min(len(tok), 12)])
			}
		case "login", "logout":
			if r.res.stdout != "" {
				fail(4, "%s printed on stdout: %q", name, r.res.stdout)
			}
		case "status":
			if r.res.exit == 0 && !json.Valid([]byte(r.res.stdout)) {
				fail(4, "%s -o json: stdout is not JSON: %q", name, r.res.stdout)
			}
		}
	}

	// 5. A failure note from the future is not believed. (In a read-only
	// cache no refresh is due: its successor could not be saved, so the
	// refresh token is rightly kept unspent, which invariant 2 checks.)
	if st.futureNote && !st.roAtStart {
		e := st.before.stored[st.mode]
		if e != nil && e.RefreshToken != "" && state(e.RefreshToken).Active && m.refreshesIn(ex) == 0 {
			for _, r := range st.runs {
				if r.kind == "get-token" && r.res.exit != 0 {
					fail(5, "after a failure note dated in the future, get-token did not try to refresh (exit %d: %s)", r.res.exit, stderrGist(r.res.stderr))
				}
			}
		}
	}

	// 6. A session that cannot be read is not signed over.
	if st.keyringLocked {
		if ke := st.before.inKeyring; ke != nil && ke.RefreshToken != "" && state(ke.RefreshToken).Active {
			for _, x := range ex {
				if strings.HasSuffix(x.GrantType, ":device_code") {
					fail(6, "a device login ran while the keyring was locked over a live keyring session (%s), which it could not read", short(ke.RefreshToken))
					break
				}
			}
		}
	}

	m.logStep(st, ex, after)
	if len(problems) > 0 {
		m.violations = append(m.violations, fmt.Sprintf("seed %d, step %d (%s): %s", m.seed, st.n, st.op, strings.Join(problems, "\n  ")))
		m.log = append(m.log, "  VIOLATION: "+strings.Join(problems, "\n  VIOLATION: "))
		for i, r := range st.runs {
			m.log = append(m.log, fmt.Sprintf("  run %d stderr:\n%s", i+1, indent(r.res.stderr, "    | ")))
		}
	}
}

func (m *modelRun) bySHA(sha string) (providertest.IssuedToken, bool) {
	for _, it := range m.seqSecrets {
		if it.SHA256 == sha {
			return it, true
		}
	}
	return providertest.IssuedToken{}, false
}

// answers describes what the plugin got for its refreshes of a token.
func (m *modelRun) answers(ex []providertest.Exchange, sha string) string {
	var out []string
	for _, x := range ex {
		if x.RefreshTokenSHA256 != sha {
			continue
		}
		switch {
		case x.Fault != "":
			out = append(out, "fault "+string(x.Fault))
		case x.ClientGone:
			out = append(out, "none (the client was gone)")
		case x.OAuthError != "":
			out = append(out, fmt.Sprintf("HTTP %d %s", x.Status, x.OAuthError))
		default:
			out = append(out, fmt.Sprintf("HTTP %d", x.Status))
		}
	}
	if len(out) == 0 {
		return "no refresh of it"
	}
	return strings.Join(out, ", ")
}

func (m *modelRun) refreshesIn(ex []providertest.Exchange) int {
	n := 0
	for _, x := range ex {
		if x.GrantType == "refresh_token" {
			n++
		}
	}
	return n
}

// logStep adds the step to the sequence's log.
func (m *modelRun) logStep(st *modelStep, ex []providertest.Exchange, after *modelSnapshot) {
	var b strings.Builder
	fmt.Fprintf(&b, "  #%02d %-12s [%s]%s", st.n, st.op, st.mode, map[bool]string{true: " (cache read-only)"}[st.roAtStart])
	st.mu.Lock()
	for _, n := range st.notes {
		fmt.Fprintf(&b, "\n      %s", n)
	}
	st.mu.Unlock()
	for _, x := range ex {
		if x.GrantType == "" {
			continue
		}
		what := fmt.Sprintf("HTTP %d", x.Status)
		switch {
		case x.Fault != "":
			what = "fault: " + string(x.Fault)
		case x.ClientGone:
			what = "client gone (forwarded: " + strconv.FormatBool(x.Forwarded) + ")"
		case x.OAuthError != "":
			what += " " + x.OAuthError
		}
		rt := ""
		if x.RefreshTokenSHA256 != "" {
			rt = " RT " + x.RefreshTokenSHA256[:10]
		}
		fmt.Fprintf(&b, "\n      proxy: %s%s -> %s", strings.TrimPrefix(x.GrantType, "urn:ietf:params:oauth:grant-type:"), rt, what)
	}
	for _, r := range st.runs {
		state := fmt.Sprintf("exit %d", r.res.exit)
		if r.killed {
			state = "SIGKILLed"
		}
		if r.hung {
			state = "HUNG"
		}
		if r.kind == "get-token" && r.res.stdout != "" {
			state += ", credential printed"
		}
		fmt.Fprintf(&b, "\n      %s %s -> %s in %s", r.kind, modelArgsSummary(r.args), state, r.res.took.Round(10*time.Millisecond))
		if r.res.stderr != "" {
			fmt.Fprintf(&b, "; stderr %s", stderrGist(r.res.stderr))
		}
	}
	var held []string
	for v, where := range m.heldRefreshTokens(after) {
		held = append(held, fmt.Sprintf("RT %s in %s", m.seqSecrets[v].SHA256[:10], m.place(where)))
	}
	sort.Strings(held)
	if len(held) == 0 {
		held = []string{"no refresh token"}
	}
	fmt.Fprintf(&b, "\n      held after: %s", strings.Join(held, ", "))
	m.log = append(m.log, b.String())
}

// onlyInTempFiles tells whether every place is a temp file of an
// interrupted write (.tmp-*), which the plugin never reads a session from.
func (m *modelRun) onlyInTempFiles(places []string) bool {
	for _, p := range places {
		if !strings.HasPrefix(filepath.Base(p), ".tmp-") {
			return false
		}
	}
	return len(places) > 0
}

// place shortens a path for the log: $CACHE, $TMPDIR, $RUNTIME.
func (m *modelRun) place(where string) string {
	for _, r := range []struct{ dir, name string }{{m.dir, "$CACHE"}, {m.tmp, "$TMPDIR"}, {m.runtime, "$RUNTIME"}} {
		if rest, ok := strings.CutPrefix(where, r.dir); ok {
			return r.name + rest
		}
	}
	return where
}

// modelArgsSummary keeps the flags that differ between steps.
func modelArgsSummary(args []string) string {
	var keep []string
	for _, a := range args {
		if a == "--force" || a == "--all" || strings.HasPrefix(a, "--device-login") || strings.HasPrefix(a, "--remember-failure") || strings.HasPrefix(a, "--token-cache") {
			keep = append(keep, a)
		}
	}
	return strings.Join(keep, " ")
}

// execCredentialToken checks that out is exactly one ExecCredential in a
// version kubectl speaks, and returns its token.
func execCredentialToken(out string) (string, error) {
	c, err := decodeCredential(out)
	if err != nil {
		return "", err
	}
	if !slices.Contains([]string{"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"}, c.APIVersion) {
		return "", fmt.Errorf("not a credential: apiVersion %q", c.APIVersion)
	}
	return c.Status.Token, nil
}

// stderrGist is the last line of stderr (the error, if any), quoted.
func stderrGist(s string) string {
	s = strings.TrimSpace(s)
	lines := strings.Split(s, "\n")
	last := lines[len(lines)-1]
	if len(last) > 220 {
		last = last[:220] + "…"
	}
	if len(lines) > 1 {
		return fmt.Sprintf("%q (+%d lines)", last, len(lines)-1)
	}
	return fmt.Sprintf("%q", last)
}

func indent(s, prefix string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return prefix + "(empty)"
	}
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
