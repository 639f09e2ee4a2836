package plugin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/plugin"
	"github.com/devicelogin/kubectl-device-login/plugin/kubetest"
)

// The core real-kubectl scenario (TestRealKubectl's: a device login through
// kubectl, a cache hit, a refresh ahead of expiry) against every kubectl
// release google-cloud-cli installs beside the default kubectl, with both
// exec credential apiVersions.
//
// KUBECTL_MATRIX_DOC=../docs/kubectl-matrix.md writes the results table
// there (`go test ./plugin -run TestKubectlMatrix` from the module root).

// matrixVersions are the kubectl.1.NN binaries beside kubectl.
var matrixVersions = []string{"1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"}

// matrixTTL is the access token lifetime of the scenario: the plugin
// refreshes at half of it, so the cache hit has matrixTTL/2 to happen,
// generous on a loaded machine.
const matrixTTL = 12 * time.Second

// matrixRow is one kubectl and exec apiVersion's outcome.
type matrixRow struct {
	minor, gitVersion, apiVersion string
	// login, cacheHit, refresh are "pass", "FAIL" or "not run".
	login, cacheHit, refresh string
	took                     time.Duration
}

func TestKubectlMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the kubectl matrix takes a minute or two")
	}
	var mu sync.Mutex
	var rows []matrixRow
	t.Cleanup(func() {
		path := os.Getenv("KUBECTL_MATRIX_DOC")
		if path == "" {
			return
		}
		if err := os.WriteFile(path, matrixDoc(rows, t.Failed()), 0o644); err != nil {
			t.Error(err)
		}
	})
	for _, minor := range matrixVersions {
		t.Run(minor, func(t *testing.T) {
			t.Parallel()
			bin := kubetest.Kubectl(t, minor)
			gitVersion := kubectlClientVersion(t, bin)
			if !strings.HasPrefix(gitVersion, "v"+minor+".") {
				t.Errorf("kubectl.%s says it is %s", minor, gitVersion)
			}
			for _, apiVersion := range []string{plugin.APIVersionV1, plugin.APIVersionV1beta1} {
				t.Run(apiVersion[strings.LastIndex(apiVersion, "/")+1:], func(t *testing.T) {
					row := matrixRow{minor: minor, gitVersion: gitVersion, apiVersion: apiVersion,
						login: "not run", cacheHit: "not run", refresh: "not run"}
					start := time.Now()
					defer func() {
						row.took = time.Since(start)
						mu.Lock()
						rows = append(rows, row)
						mu.Unlock()
					}()
					kubectlScenario(t, bin, apiVersion, &row)
				})
			}
		})
	}
}

// kubectlScenario is the core real-kubectl scenario, recording each step's
// outcome in row.
func kubectlScenario(t *testing.T, bin, apiVersion string, row *matrixRow) {
	p, api, s, kc := kubectlFixture(t, matrixTTL, apiVersion)
	ctx := testContext(t, 2*time.Minute)

	// 1. Device login through kubectl; the prompt reaches kubectl's stderr.
	row.login = "FAIL"
	r := kubectl(t, ctx, bin, kc, s.approve(t), "get", "--raw", "/api")
	if r.exit != 0 || !strings.Contains(r.stdout, `"APIVersions"`) {
		t.Fatalf("kubectl get --raw /api: exit %d\nstdout %s\nstderr %s", r.exit, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "Enter the code") {
		t.Fatalf("the login prompt did not reach kubectl's stderr:\n%s", r.stderr)
	}
	first := s.entry(t)
	r.noSecrets(t, first)
	row.login = "pass"

	// 2. Cache hit: nothing on stderr, the same token.
	row.cacheHit = "FAIL"
	refreshAt := first.Expiry.Add(-min(plugin.DefaultRefreshMargin, first.Expiry.Sub(first.IssuedAt)/2))
	r = kubectl(t, ctx, bin, kc, nil, "get", "--raw", "/api")
	if time.Now().After(refreshAt) {
		t.Fatalf("the machine is too slow for this scenario: the cache hit ended after the refresh time")
	}
	if r.exit != 0 || r.stderr != "" {
		t.Fatalf("cache hit: exit %d, stderr %q", r.exit, r.stderr)
	}
	if _, _, last := api.Stats(); last != first.AccessToken {
		t.Fatalf("kubectl did not send the cached token")
	}
	row.cacheHit = "pass"

	// 3. Refresh ahead of expiry, then whoami with the new token.
	row.refresh = "FAIL"
	time.Sleep(time.Until(refreshAt) + 500*time.Millisecond)
	r = kubectl(t, ctx, bin, kc, nil, "auth", "whoami")
	if r.exit != 0 || !strings.Contains(r.stdout, p.Email()) && !strings.Contains(r.stdout, p.Subject()) {
		t.Fatalf("kubectl auth whoami: exit %d\nstdout %s\nstderr %s", r.exit, r.stdout, r.stderr)
	}
	second := s.entry(t)
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Fatalf("no refresh happened")
	}
	if _, rejected, last := api.Stats(); rejected != 0 || last != second.AccessToken {
		t.Fatalf("the API server refused %d requests; last token is the refreshed one: %t", rejected, last == second.AccessToken)
	}
	r.noSecrets(t, second)
	if c := s.counts(t); c.DeviceAuthorization != 1 || c.RefreshTokenGrant != 1 {
		t.Fatalf("provider counts %+v, want one device authorization and one refresh", c)
	}
	row.refresh = "pass"
}

// kubectlClientVersion is the gitVersion a kubectl binary reports.
func kubectlClientVersion(t *testing.T, bin string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "version", "--client", "-o", "json")
	cmd.Env = baseEnv()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, stderr.String())
	}
	var v struct {
		ClientVersion struct {
			GitVersion string `json:"gitVersion"`
		} `json:"clientVersion"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || v.ClientVersion.GitVersion == "" {
		t.Fatalf("%s version: %v\n%s", bin, err, stdout.String())
	}
	return v.ClientVersion.GitVersion
}

// matrixDoc renders docs/kubectl-matrix.md from a run's results.
func matrixDoc(rows []matrixRow, failed bool) []byte {
	slices.SortFunc(rows, func(a, b matrixRow) int {
		if c := strings.Compare(a.gitVersion, b.gitVersion); c != 0 {
			return c
		}
		return strings.Compare(a.apiVersion, b.apiVersion)
	})
	var b strings.Builder
	b.WriteString(`# kubectl compatibility matrix

<!-- Generated by TestKubectlMatrix (plugin/matrix_test.go):
     KUBECTL_MATRIX_DOC=../docs/kubectl-matrix.md go test ./plugin -run TestKubectlMatrix -count=1
     Do not edit by hand. -->

Every kubectl release that google-cloud-cli installs beside the default
` + "`kubectl`" + ` (` + "`kubectl.1.27`" + ` … ` + "`kubectl.1.33`" + ` in the directory ` + "`kubectl`" + ` resolves
to) runs the plugin from a kubeconfig exec block, once with
` + "`client.authentication.k8s.io/v1`" + ` and once with ` + "`v1beta1`" + ` (` + "`interactiveMode: Never`" + `),
against npm's oidc-provider and an HTTPS API endpoint that checks each
bearer token at the provider:

1. **login**: ` + "`kubectl get --raw /api`" + ` starts a device login; the prompt
   reaches kubectl's stderr, the test approves the code at the provider, and
   the request succeeds.
2. **cache hit**: the same command again prints nothing on stderr and sends
   the cached token.
3. **refresh**: past half the token's lifetime, ` + "`kubectl auth whoami`" + ` refreshes
   (one refresh_token request, a new access and refresh token) and shows the
   signed-in user; the provider saw exactly one device authorization and one
   refresh, and the API endpoint refused nothing.

CI runs it with every ` + "`make test`" + `.

`)
	fmt.Fprintf(&b, "Last run: %s, %s/%s, %s.\n\n", time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.Version())
	b.WriteString("| kubectl | exec apiVersion | login | cache hit | refresh | time |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s (`kubectl.%s`) | `%s` | %s | %s | %s | %.1f s |\n",
			r.gitVersion, r.minor, r.apiVersion, r.login, r.cacheHit, r.refresh, r.took.Seconds())
	}
	if failed {
		b.WriteString("\nThe run failed; see the test log for the failing step's output.\n")
	}
	b.WriteString(`
## Notes

- kubectl 1.27's ` + "`kubectl auth whoami`" + ` posts its SelfSubjectReview to
  ` + "`authentication.k8s.io/v1beta1`" + ` (1.28 and later use ` + "`v1`" + `; seen with ` + "`-v=6`" + `). The
  API endpoint here answers any version, so the refresh step passes; a real
  kube-apiserver 1.37 no longer serves v1beta1, and there 1.27's whoami fails
  while every command that only sends the token works. The end-to-end tests
  against a real kube-apiserver (plugin/kube_e2e_test.go) run kubectl
  1.27–1.33 too, with ` + "`kubectl create --raw`" + ` in place of whoami for 1.27.
- kubectl 1.27's ` + "`kubectl version --client`" + ` prints a deprecation warning
  before the version; ` + "`-o json`" + ` does not.
- Nothing else differs: every version runs the plugin with
  ` + "`interactiveMode: Never`" + `, passes ` + "`KUBERNETES_EXEC_INFO`" + ` with the apiVersion of the
  kubeconfig entry, shows the plugin's stderr (the login prompt) and reads
  exactly one ExecCredential from its stdout.
`)
	return []byte(b.String())
}
