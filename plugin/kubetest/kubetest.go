// Package kubetest runs a real Kubernetes API server (kube-apiserver v1.37.2
// and etcd, as child processes) for end-to-end tests of the credential
// plugin. It is used only by tests and links no Kubernetes code: the binaries
// are built by plugin/testdata/kubeserver/build.sh (`make kube-servers`) into
// bin/kube at the repository root, or found in $KUBESERVER_BIN.
//
// A cluster has its own throwaway CA, an admin client certificate
// (O=system:masters), RBAC authorization, and authenticates bearer tokens
// with one structured `jwt` authenticator per configured Issuer.
package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvBinDir names the environment variable that points at a directory
// holding the kube-apiserver and etcd binaries.
const EnvBinDir = "KUBESERVER_BIN"

// Config configures a cluster. The zero value gives a cluster that
// authenticates only client certificates (and service-account tokens).
type Config struct {
	// Issuers become the jwt authenticators of the
	// AuthenticationConfiguration (see AuthenticationConfig).
	Issuers []Issuer
	// AuthenticationConfig, when set, is used verbatim as the
	// --authentication-config file instead of one built from Issuers.
	AuthenticationConfig []byte
	// CA, when set, is the CA that signs the API server's certificates,
	// so that one CA can also sign an OIDC provider's serving certificate.
	// Default: a fresh CA.
	CA *CA
	// ExtraArgs are appended to kube-apiserver's command line
	// (--flag=value; a later flag wins).
	ExtraArgs []string
	// StartTimeout bounds the wait for etcd and /readyz (default 90s).
	StartTimeout time.Duration
}

// Cluster is a running kube-apiserver with its etcd.
type Cluster struct {
	// Server is the API server URL, https://127.0.0.1:PORT.
	Server string
	// CAPEM is the PEM CA certificate that verifies Server (a kubeconfig's
	// certificate-authority-data).
	CAPEM []byte
	// CAFile is CAPEM written to a file.
	CAFile string
	// AdminKubeconfig is a kubeconfig whose user authenticates with a
	// client certificate in group system:masters.
	AdminKubeconfig string
	// Dir holds the cluster's files (certificates, configs, logs, etcd data).
	Dir string
	// APIServerLog and EtcdLog are the processes' combined output.
	APIServerLog, EtcdLog string
	// AuthenticationConfig is the --authentication-config document in use.
	AuthenticationConfig []byte
	// StartupTime is how long etcd plus kube-apiserver took to become ready.
	StartupTime time.Duration

	ca        *CA
	extraArgs []string
	adminCert tls.Certificate
	admin     *http.Client
	etcd      *process
	apiserver *process
}

// Start starts etcd and kube-apiserver, waits until /readyz answers 200 to
// the admin client, and stops both (and removes their files) when the test
// ends. It fails the test if the binaries are missing or the cluster does not
// come up. JWT issuers are contacted asynchronously after start: use
// WaitForToken before relying on a token being accepted.
func Start(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := start(bin, dir, cfg)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubetest: last lines of kube-apiserver's log (%s):\n%s", c.APIServerLog, tail(c.APIServerLog, 40))
		}
		stopping := time.Now()
		c.Close()
		t.Logf("kubetest: cluster stopped in %v", time.Since(stopping).Round(time.Millisecond))
	})
	t.Logf("kubetest: kube-apiserver %s ready in %v", c.Server, c.StartupTime.Round(time.Millisecond))
	return c
}

// New is Start for callers without a testing.TB (e.g. a TestMain sharing
// one cluster): the caller must call Close.
func New(cfg Config) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, err
	}
	c, err := start(bin, dir, cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// Close stops kube-apiserver and etcd (SIGTERM, then SIGKILL after a short
// grace) and removes the cluster's directory.
func (c *Cluster) Close() {
	c.apiserver.stop(3 * time.Second) // it exits ~1 s after SIGTERM
	c.etcd.stop(3 * time.Second)
	os.RemoveAll(c.Dir)
}

// BinDir finds the directory holding kube-apiserver and etcd: $KUBESERVER_BIN,
// else bin/kube at the repository root.
func BinDir() (string, error) {
	dir := os.Getenv(EnvBinDir)
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return "", fmt.Errorf("kubetest: %v; run `make kube-servers` at the repository root, or set %s", err, EnvBinDir)
		}
		dir = filepath.Join(root, "bin", "kube")
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("kubetest: %s not found: run `make kube-servers` at the repository root "+
				"(plugin/testdata/kubeserver/build.sh; a few minutes the first time), or set %s to a directory holding kube-apiserver and etcd", p, EnvBinDir)
		}
	}
	return dir, nil
}

// repoRoot is the directory of the go.mod above this source file, or, when
// built with -trimpath, above the working directory.
func repoRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, d := range starts {
		for {
			if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
				bytes.Contains(data, []byte("module github.com/devicelogin/kubectl-device-login\n")) {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", errors.New("repository root (go.mod of github.com/devicelogin/kubectl-device-login) not found")
}

func start(bin, dir string, cfg Config) (*Cluster, error) {
	began := time.Now()
	timeout := cfg.StartTimeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	deadline := began.Add(timeout)

	ca := cfg.CA
	if ca == nil {
		var err error
		if ca, err = NewCA(); err != nil {
			return nil, err
		}
	}
	c := &Cluster{
		CAPEM:        ca.PEM,
		Dir:          dir,
		APIServerLog: filepath.Join(dir, "kube-apiserver.log"),
		EtcdLog:      filepath.Join(dir, "etcd.log"),
		ca:           ca,
		extraArgs:    cfg.ExtraArgs,
	}

	// Files kube-apiserver reads.
	servingCert, servingKey, err := ca.pki.serving()
	if err != nil {
		return nil, err
	}
	adminCert, adminKey, err := ca.pki.client("kubetest-admin", "system:masters")
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := serviceAccountKey()
	if err != nil {
		return nil, err
	}
	authn := cfg.AuthenticationConfig
	if authn == nil {
		if authn, err = AuthenticationConfig(cfg.Issuers); err != nil {
			return nil, err
		}
	}
	c.AuthenticationConfig = authn
	c.CAFile = filepath.Join(dir, "ca.crt")
	files := map[string][]byte{
		"ca.crt":          ca.PEM,
		"serving.crt":     servingCert,
		"serving.key":     servingKey,
		"admin.crt":       adminCert,
		"admin.key":       adminKey,
		"sa.key":          saKey,
		"sa.pub":          saPub,
		"authn.json":      authn,
		"etcd/.keep":      nil,
		"apiserver/.keep": nil,
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return nil, err
		}
	}
	if c.adminCert, err = keyPair(adminCert, adminKey); err != nil {
		return nil, err
	}
	c.admin = &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: ca.pki.pool(), Certificates: []tls.Certificate{c.adminCert}},
			ForceAttemptHTTP2: true,
		},
	}

	// A free port may be taken by someone else between the probe and the
	// server's bind: try again with new ports a few times.
	for attempt := 1; ; attempt++ {
		err = c.launch(bin, deadline)
		if err == nil {
			break
		}
		c.apiserver.stop(time.Second)
		c.etcd.stop(time.Second)
		if attempt == 3 || !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			return nil, err
		}
		os.RemoveAll(filepath.Join(dir, "etcd", "data"))
	}
	c.StartupTime = time.Since(began)

	c.AdminKubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := c.WriteKubeconfig(c.AdminKubeconfig, User{ClientCertPEM: adminCert, ClientKeyPEM: adminKey}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

var errPortInUse = errors.New("address already in use")

func (c *Cluster) launch(bin string, deadline time.Time) error {
	dir := c.Dir
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	etcdPeer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.Server = "https://127.0.0.1:" + strconv.Itoa(ports[2])

	c.etcd, err = startProcess("etcd", filepath.Join(bin, "etcd"), []string{
		"--name=kubetest",
		"--data-dir=" + filepath.Join(dir, "etcd", "data"),
		"--listen-client-urls=" + etcdClient,
		"--advertise-client-urls=" + etcdClient,
		"--listen-peer-urls=" + etcdPeer,
		"--initial-advertise-peer-urls=" + etcdPeer,
		"--initial-cluster=kubetest=" + etcdPeer,
		"--initial-cluster-state=new",
		"--unsafe-no-fsync", // a throwaway store: no need to survive power loss
		"--log-level=warn",
	}, dir, c.EtcdLog)
	if err != nil {
		return err
	}
	if err := waitHTTP(deadline, c.etcd, http.DefaultClient, etcdClient+"/health", `"health":"true"`); err != nil {
		return fmt.Errorf("etcd did not become healthy: %w\n%s", err, tail(c.EtcdLog, 30))
	}

	args := []string{
		"--etcd-servers=" + etcdClient,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports[2]),
		"--tls-cert-file=" + filepath.Join(dir, "serving.crt"),
		"--tls-private-key-file=" + filepath.Join(dir, "serving.key"),
		"--client-ca-file=" + filepath.Join(dir, "ca.crt"),
		"--authorization-mode=RBAC",
		"--authentication-config=" + filepath.Join(dir, "authn.json"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--cert-dir=" + filepath.Join(dir, "apiserver"),
		// The kubernetes Service's endpoints cannot be a loopback address.
		"--endpoint-reconciler-type=none",
		// Quick shutdown: no delay before closing the listener, no wait
		// for watches.
		"--shutdown-delay-duration=0s",
		"--shutdown-watch-termination-grace-period=0s",
		"--shutdown-send-retry-after=false",
		// Less background work on a shared 2-core machine.
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=0",
	}
	args = append(args, c.extraArgs...)
	c.apiserver, err = startProcess("kube-apiserver", filepath.Join(bin, "kube-apiserver"), args, dir, c.APIServerLog)
	if err != nil {
		return err
	}
	if err := waitHTTP(deadline, c.apiserver, c.admin, c.Server+"/readyz", ""); err != nil {
		return fmt.Errorf("kube-apiserver did not become ready: %w\n%s", err, tail(c.APIServerLog, 40))
	}
	return nil
}

// process is a child process whose output goes to a log file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // valid after done is closed
}

func startProcess(name, path string, args []string, dir, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "+ %s %s\n", path, strings.Join(args, " "))
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		err := p.err
		if err == nil {
			err = errors.New("exited with status 0")
		}
		if data, _ := os.ReadFile(p.log); bytes.Contains(data, []byte("address already in use")) {
			err = fmt.Errorf("%w (%w)", err, errPortInUse)
		}
		return true, fmt.Errorf("%s %w", p.name, err)
	default:
		return false, nil
	}
}

// stop sends SIGTERM, then SIGKILL if the process outlives grace.
func (p *process) stop(grace time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHTTP polls url until it answers 200 (with want in the body, if set),
// the process dies, or the deadline passes.
func waitHTTP(deadline time.Time, p *process, client *http.Client, url, want string) error {
	var last error
	for {
		if dead, err := p.exited(); dead {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(want)) {
				cancel()
				return nil
			}
			err = fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
		}
		cancel()
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out; last: %w", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
