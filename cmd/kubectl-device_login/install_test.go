package main

import (
	"archive/zip"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// modulePath is the module the Go install route names.
const modulePath = "github.com/devicelogin/kubectl-device-login"

// TestGoInstallRoute runs the `go install …@latest` line that the README
// and docs/install.md show, and checks that it leaves a plugin kubectl
// finds. The module is not on the Go module proxy yet (it answers 403
// for it), so the checkout is served as v0.1.0 from a local proxy (the
// file:// form of GOPROXY); everything else is what a user's go command
// does. Dependencies come from this machine's module cache.
func TestGoInstallRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin from a module zip (-short)")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git lists the files of the module")
	}
	line := regexp.MustCompile(`(?m)^go install (\S+)@latest$`)
	pkg := ""
	for _, doc := range []string{"../../README.md", "../../docs/install.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		m := line.FindStringSubmatch(shellBlocks(string(data)))
		switch {
		case m == nil:
			t.Errorf("%s shows no `go install …@latest` line", filepath.Base(doc))
		case pkg != "" && m[1] != pkg:
			t.Errorf("%s installs %s, another document %s", filepath.Base(doc), m[1], pkg)
		default:
			pkg = m[1]
		}
	}
	if pkg != modulePath+"/cmd/kubectl-device_login" {
		t.Fatalf("the documents install %q, not this command", pkg)
	}

	proxy := t.TempDir()
	writeModuleProxy(t, proxy, "v0.1.0", "../..")
	gobin := t.TempDir()
	began := time.Now()
	cmd := exec.Command("go", "install", pkg+"@latest")
	cmd.Dir = t.TempDir() // outside any module, as for a user
	// A module cache of its own, so that this made-up v0.1.0 never
	// reaches the machine's; the dependencies come from the machine's
	// download cache, which is itself laid out as a module proxy.
	// GOSUMDB=off: the test machines cannot reach sum.golang.org, and the
	// module served here is in no checksum database; the dependencies
	// were checked when they were first downloaded.
	modcache := t.TempDir()
	realCache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(),
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(filepath.Join(strings.TrimSpace(string(realCache)), "cache", "download")),
		"GOMODCACHE="+modcache, "GOFLAGS=-modcacherw", "GOSUMDB=off", "GOBIN="+gobin, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s@latest: %v\n%s", pkg, err, out)
	}
	t.Logf("go install %s@latest took %v", pkg, time.Since(began).Round(time.Second))

	bin := filepath.Join(gobin, "kubectl-device_login")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "kubectl-device-login v0.1.0 (") {
		t.Errorf("%s version: %v\n%s", bin, err, out)
	}
	// kubectl finds it on PATH by its name, as `kubectl device-login`.
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl on PATH")
	}
	kc := exec.Command(kubectl, "device-login", "version")
	kc.Env = append(os.Environ(), "PATH="+gobin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := kc.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "kubectl-device-login v0.1.0 (") {
		t.Errorf("kubectl device-login version: %v\n%s", err, out)
	}
}

// writeModuleProxy lays out a module proxy (GOPROXY=file://dir) that
// serves the module in root, as git knows its files, at version.
func writeModuleProxy(t *testing.T, dir, version, root string) {
	t.Helper()
	ls := exec.Command("git", "ls-files", "-co", "--exclude-standard")
	ls.Dir = root
	listed, err := ls.Output()
	if err != nil {
		t.Skipf("git ls-files: %v", err)
	}
	files := strings.Split(strings.TrimSpace(string(listed)), "\n")
	// Directories with a go.mod of their own are other modules.
	var nested []string
	for _, f := range files {
		if path.Base(f) == "go.mod" && f != "go.mod" {
			nested = append(nested, path.Dir(f)+"/")
		}
	}
	at := filepath.Join(dir, filepath.FromSlash(modulePath), "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		t.Fatal(err)
	}
	zf, err := os.Create(filepath.Join(at, version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(zf)
	n := 0
files:
	for _, f := range files {
		if strings.HasPrefix(f, ".") {
			continue // .ci, .gitignore, a developer's links: not part of the build
		}
		for _, d := range nested {
			if strings.HasPrefix(f, d) {
				continue files
			}
		}
		fi, err := os.Lstat(filepath.Join(root, f))
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a link
		}
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(modulePath + "@" + version + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zf.Close(); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(gomod), "module "+modulePath+"\n") {
		t.Fatalf("go.mod does not declare module %s", modulePath)
	}
	for name, data := range map[string]string{
		version + ".mod":  string(gomod),
		version + ".info": fmt.Sprintf(`{"Version":%q,"Time":%q}`, version, time.Now().UTC().Format(time.RFC3339)),
		"list":            version + "\n",
	} {
		if err := os.WriteFile(filepath.Join(at, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("module proxy: %s@%s, %d files", modulePath, version, n)
}
