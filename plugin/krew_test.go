package plugin_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// The release as users get it: `make dist`'s tool builds the archives for
// every platform twice (they must be byte-identical), krew's own validator
// checks the manifest, krew itself (built from the Go module proxy)
// installs every platform's archive offline, and the real kubectl signs in
// through the krew-installed plugin against a real provider.
//
// It cross-compiles six binaries and builds krew, so it runs only with
// DEVICE_LOGIN_KREW=1 (CI sets it).

// krewVersion pins krew and its manifest validator. They are built with
// `go install module@version`, so krew stays out of this module's go.mod.
const krewVersion = "v0.5.0"

// krewTestVersion is the release version the test builds.
const krewTestVersion = "v0.0.0-krewtest"

// releasePlatforms are the platforms every release must cover.
var releasePlatforms = []struct{ os, arch string }{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

// krewManifest is the part of krew's Plugin the test checks.
type krewManifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
		} `json:"platforms"`
	} `json:"spec"`
}

func TestKrew(t *testing.T) {
	if os.Getenv("DEVICE_LOGIN_KREW") != "1" {
		t.Skip("set DEVICE_LOGIN_KREW=1 to build the release for every platform and install it with krew (minutes)")
	}
	start := time.Now()
	tools := t.TempDir()
	goInstall(t, tools, "sigs.k8s.io/krew/cmd/krew@"+krewVersion)
	goInstall(t, tools, "sigs.k8s.io/krew/cmd/validate-krew-manifest@"+krewVersion)
	distTool := filepath.Join(tools, "device-login-dist")
	goCmd(t, "..", "build", "-o", distTool, "./cmd/device-login-dist")
	t.Logf("krew %s, its validator and the dist tool built in %v", krewVersion, time.Since(start).Round(time.Second))

	// Two releases from the same tree, as `make dist` makes them.
	runs := []string{filepath.Join(t.TempDir(), "dist1"), filepath.Join(t.TempDir(), "dist2")}
	for _, out := range runs {
		began := time.Now()
		cmd := exec.Command(distTool, "-version", krewTestVersion, "-commit", "krewtest", "-out", out)
		cmd.Dir = ".."
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("device-login-dist: %v\n%s", err, b)
		}
		t.Logf("dist into %s in %v:\n%s", filepath.Base(out), time.Since(began).Round(time.Second), b)
	}
	dist := runs[0]
	manifestPath := filepath.Join(dist, "device-login.yaml")

	t.Run("reproducible", func(t *testing.T) {
		a, b := dirSums(t, runs[0]), dirSums(t, runs[1])
		if len(a) != 2*len(releasePlatforms)+1 {
			t.Errorf("dist holds %d files, want an archive and a .sha256 per platform and the manifest: %v", len(a), a)
		}
		for name, sum := range a {
			if b[name] != sum {
				t.Errorf("%s differs between two runs: %s and %s", name, sum, b[name])
			} else {
				t.Logf("%s sha256 %s in both runs", name, sum)
			}
		}
		if len(a) != len(b) {
			t.Errorf("the runs made %d and %d files", len(a), len(b))
		}
	})

	t.Run("archives", func(t *testing.T) {
		license, err := os.ReadFile("../LICENSE")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range releasePlatforms {
			name, bin := archiveName(p.os, p.arch), binName(p.os)
			files := readArchive(t, filepath.Join(dist, name))
			if names := fileNames(files); !slices.Equal(names, []string{bin, "LICENSE"}) {
				t.Errorf("%s holds %v, want [%s LICENSE]", name, names, bin)
				continue
			}
			if !bytes.Equal(files[1].data, license) {
				t.Errorf("%s: LICENSE differs from the repository's", name)
			}
			if files[0].mode != 0o755 || files[1].mode != 0o644 {
				t.Errorf("%s: modes %v and %v", name, files[0].mode, files[1].mode)
			}
			// The binary says how it was built.
			info, err := buildinfo.Read(bytes.NewReader(files[0].data))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			want := map[string]string{"GOOS": p.os, "GOARCH": p.arch, "CGO_ENABLED": "0", "-trimpath": "true"}
			for k, v := range want {
				if settings[k] != v {
					t.Errorf("%s: build setting %s=%q, want %q", name, k, settings[k], v)
				}
			}
			// Go leaves -ldflags out of the build info under -trimpath; its
			// effects are in the binary: the version stamp, and no symbol
			// table (-s) or DWARF (-w).
			if !bytes.Contains(files[0].data, []byte(krewTestVersion)) {
				t.Errorf("%s: the binary does not carry the version %s", name, krewTestVersion)
			}
			if err := stripped(files[0].data); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			// macOS on Apple silicon runs only signed code: Go's linker
			// signs darwin/arm64 binaries ad hoc, cross-compiled too.
			if p.os == "darwin" && p.arch == "arm64" && !machoSigned(files[0].data) {
				t.Errorf("%s: the binary has no code signature; macOS on arm64 would kill it", name)
			}
			t.Logf("%s: binary %d bytes, archive %d bytes", name, len(files[0].data), fileSize(t, filepath.Join(dist, name)))
		}
	})

	t.Run("manifest", func(t *testing.T) {
		raw, err := os.ReadFile(manifestPath)
		if err != nil {
			t.Fatal(err)
		}
		var m krewManifest
		if err := yaml.UnmarshalStrict(raw, &m); err != nil {
			t.Fatalf("manifest: %v", err)
		}
		if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "device-login" ||
			m.Spec.Version != krewTestVersion || m.Spec.Homepage != "https://github.com/devicelogin/kubectl-device-login" ||
			m.Spec.ShortDescription == "" || m.Spec.Description == "" || !strings.Contains(m.Spec.Caveats, "kubectl device-login setup") {
			t.Errorf("manifest header: %+v", m)
		}
		if len(m.Spec.Platforms) != len(releasePlatforms) {
			t.Fatalf("%d platforms, want %d", len(m.Spec.Platforms), len(releasePlatforms))
		}
		for i, p := range releasePlatforms {
			mp := m.Spec.Platforms[i]
			name, bin := archiveName(p.os, p.arch), binName(p.os)
			sum := fileSHA256(t, filepath.Join(dist, name))
			side, _ := os.ReadFile(filepath.Join(dist, name+".sha256"))
			if string(side) != sum+"  "+name+"\n" {
				t.Errorf("%s.sha256 holds %q, want %q", name, side, sum+"  "+name+"\n")
			}
			if mp.SHA256 != sum || !bytes.Contains(raw, []byte(`sha256: "`+sum+`"`)) {
				t.Errorf("%s: manifest sha256 %q (quoted: %t), archive %s", name, mp.SHA256, bytes.Contains(raw, []byte(`"`+sum+`"`)), sum)
			}
			if !maps.Equal(mp.Selector.MatchLabels, map[string]string{"os": p.os, "arch": p.arch}) ||
				!strings.HasPrefix(mp.URI, "https://") || !strings.HasSuffix(mp.URI, "/"+krewTestVersion+"/"+name) || mp.Bin != bin ||
				len(mp.Files) != 2 || mp.Files[0].From != bin || mp.Files[1].From != "LICENSE" || mp.Files[0].To != "." || mp.Files[1].To != "." {
				t.Errorf("%s: platform entry %+v", name, mp)
			}
		}

		// krew's own validator accepts it, and refuses a copy with an
		// uppercase checksum (so it really reads the file).
		out, err := exec.Command(filepath.Join(tools, "validate-krew-manifest"), "-skip-install", "-manifest", manifestPath).CombinedOutput()
		t.Logf("validate-krew-manifest:\n%s", out)
		if err != nil {
			t.Errorf("krew's validator refused the manifest: %v", err)
		}
		bad := filepath.Join(t.TempDir(), "device-login.yaml")
		sum := m.Spec.Platforms[0].SHA256
		if err := os.WriteFile(bad, bytes.Replace(raw, []byte(sum), []byte(strings.ToUpper(sum)), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(filepath.Join(tools, "validate-krew-manifest"), "-skip-install", "-manifest", bad).CombinedOutput(); err == nil || !strings.Contains(string(out), "sha256") {
			t.Errorf("the validator accepted an uppercase sha256 (%v):\n%s", err, out)
		}
	})

	// Every platform's archive through krew install, as krew-index's own
	// checks do it (KREW_OS/KREW_ARCH pick the platform entry), offline:
	// --manifest skips the index and --archive replaces the download.
	t.Run("install-every-platform", func(t *testing.T) {
		for _, p := range releasePlatforms {
			name, bin := archiveName(p.os, p.arch), binName(p.os)
			root := t.TempDir()
			out, err := krew(tools, root, "KREW_OS="+p.os, "KREW_ARCH="+p.arch)("install", "--manifest="+manifestPath, "--archive="+filepath.Join(dist, name))
			if err != nil {
				t.Errorf("krew install %s: %v\n%s", name, err, out)
				continue
			}
			store := filepath.Join(root, "store", "device-login", krewTestVersion)
			link, err := os.Readlink(filepath.Join(root, "bin", bin))
			if err != nil || link != filepath.Join(store, bin) {
				t.Errorf("%s: krew's bin/%s links to %q (%v), want %s", name, bin, link, err, filepath.Join(store, bin))
			}
			files := readArchive(t, filepath.Join(dist, name))
			for _, f := range files {
				got, err := os.ReadFile(filepath.Join(store, f.name))
				if err != nil || !bytes.Equal(got, f.data) {
					t.Errorf("%s: installed %s differs from the archive's (%v)", name, f.name, err)
				}
			}
		}
		// krew checks the archive against the manifest: the darwin archive
		// is refused for the linux entry.
		out, err := krew(tools, t.TempDir(), "KREW_OS=linux", "KREW_ARCH=amd64")("install", "--manifest="+manifestPath, "--archive="+filepath.Join(dist, archiveName("darwin", "arm64")))
		if err == nil || !strings.Contains(out, "checksum does not match") {
			t.Errorf("krew installed an archive whose sha256 is not the manifest's (%v):\n%s", err, out)
		}
	})

	t.Run("kubectl", func(t *testing.T) {
		if !slices.ContainsFunc(releasePlatforms, func(p struct{ os, arch string }) bool { return p.os == runtime.GOOS && p.arch == runtime.GOARCH }) {
			t.Skipf("no release archive for %s/%s", runtime.GOOS, runtime.GOARCH)
		}
		root := t.TempDir()
		out, err := krew(tools, root)("install", "--manifest="+manifestPath, "--archive="+filepath.Join(dist, archiveName(runtime.GOOS, runtime.GOARCH)))
		if err != nil {
			t.Fatalf("krew install: %v\n%s", err, out)
		}
		t.Logf("krew install:\n%s", out)
		// As krew's setup says: its bin directory first on PATH.
		t.Setenv("PATH", filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
		if p, err := exec.LookPath("kubectl-device_login"); err != nil || p != filepath.Join(root, "bin", binName(runtime.GOOS)) {
			t.Fatalf("kubectl-device_login on PATH is %q (%v), not krew's", p, err)
		}
		ctx := testContext(t, 2*time.Minute)
		kubectlBin := kubectlPath(t)

		// kubectl finds the plugin by name (no --kubeconfig before the
		// plugin name: kubectl stops looking for a plugin at the first flag).
		cmd := exec.CommandContext(ctx, kubectlBin, "device-login", "version")
		cmd.Env = baseEnv()
		v, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(v), "kubectl-device-login "+krewTestVersion+" (commit krewtest,") {
			t.Fatalf("kubectl device-login version: %v\n%s", err, v)
		}
		t.Logf("kubectl device-login version: %s", v)

		// A device login through kubectl, with the kubeconfig naming the
		// plugin as users do (found on PATH, so krew's copy).
		p := providertest.StartZitadel(t, providertest.Options{})
		api := providertest.NewAPIServer(p.Issuer(), nil)
		defer api.Close()
		s := newSession(t, p)
		kc := filepath.Join(t.TempDir(), "kubeconfig")
		if err := providertest.WriteKubeconfig(kc, providertest.Kubeconfig{
			Server: api.URL(), CAPEM: api.CAPEM(), Command: "kubectl-device_login",
			Args: s.args("get-token", "--device-login=always"),
		}); err != nil {
			t.Fatal(err)
		}
		r := kubectl(t, ctx, kubectlBin, kc, s.approve(t), "get", "--raw", "/api")
		if r.exit != 0 || !strings.Contains(r.stdout, `"APIVersions"`) || !strings.Contains(r.stderr, "Enter the code") {
			t.Fatalf("kubectl get --raw /api: exit %d\nstdout %s\nstderr %s", r.exit, r.stdout, r.stderr)
		}
		e := s.entry(t)
		r.noSecrets(t, e)
		if _, rejected, last := api.Stats(); last != e.AccessToken || rejected != 0 {
			t.Errorf("the API server got the cached token: %t; rejected %d requests", last == e.AccessToken, rejected)
		}
		// And from the cache, silently.
		r = kubectl(t, ctx, kubectlBin, kc, nil, "get", "--raw", "/api")
		if r.exit != 0 || r.stderr != "" || !strings.Contains(r.stdout, `"APIVersions"`) {
			t.Fatalf("cache hit: exit %d, stderr %q", r.exit, r.stderr)
		}
		if c := s.counts(t); c.DeviceAuthorization != 1 || c.RefreshTokenGrant != 0 {
			t.Errorf("provider counts %+v, want one device authorization", c)
		}
	})
	t.Logf("TestKrew took %v", time.Since(start).Round(time.Second))
}

// stripped checks that an ELF, Mach-O or PE binary has no DWARF and no
// symbol table (a Mach-O binary keeps only its ~100 dynamic-import
// symbols; an unstripped one has thousands).
func stripped(bin []byte) error {
	r := bytes.NewReader(bin)
	if f, err := elf.NewFile(r); err == nil {
		if f.Section(".symtab") != nil || f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil {
			return fmt.Errorf("ELF binary has a symbol table or DWARF")
		}
		return nil
	}
	if f, err := macho.NewFile(r); err == nil {
		if f.Section("__debug_info") != nil || f.Section("__zdebug_info") != nil || (f.Symtab != nil && len(f.Symtab.Syms) > 500) {
			return fmt.Errorf("Mach-O binary has DWARF or a full symbol table")
		}
		return nil
	}
	if f, err := pe.NewFile(r); err == nil {
		if len(f.Symbols) > 0 || f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil {
			return fmt.Errorf("PE binary has %d symbols or DWARF", len(f.Symbols))
		}
		return nil
	}
	return fmt.Errorf("not an ELF, Mach-O or PE binary")
}

// machoSigned reports whether a Mach-O binary has an LC_CODE_SIGNATURE
// load command.
func machoSigned(bin []byte) bool {
	f, err := macho.NewFile(bytes.NewReader(bin))
	if err != nil {
		return false
	}
	for _, l := range f.Loads {
		if raw := l.Raw(); len(raw) >= 4 && macho.LoadCmd(f.ByteOrder.Uint32(raw)) == lcCodeSignature {
			return true
		}
	}
	return false
}

// lcCodeSignature is Mach-O's LC_CODE_SIGNATURE (debug/macho has no name
// for it).
const lcCodeSignature macho.LoadCmd = 0x1d

// goInstall builds a command from the Go module proxy into dir, outside
// this module (pkg@version ignores go.mod).
func goInstall(t *testing.T, dir, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "install", pkg)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", pkg, err, out)
	}
}

func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// krew returns a runner of the krew binary in tools with KREW_ROOT=root,
// the upgrade check off, and extra environment.
func krew(tools, root string, env ...string) func(args ...string) (string, error) {
	return func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(tools, "krew"), args...)
		cmd.Env = append(append(os.Environ(), "KREW_ROOT="+root, "KREW_NO_UPGRADE_CHECK=1",
			"PATH="+filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH")), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

func archiveName(goos, goarch string) string {
	ext := ".tar.gz"
	if goos == "windows" {
		ext = ".zip"
	}
	return fmt.Sprintf("kubectl-device-login_%s_%s_%s%s", krewTestVersion, goos, goarch, ext)
}

func binName(goos string) string {
	if goos == "windows" {
		return "kubectl-device_login.exe"
	}
	return "kubectl-device_login"
}

// archived is one file read back from an archive.
type archived struct {
	name string
	mode os.FileMode
	data []byte
}

// readArchive reads every regular file of a .tar.gz or .zip, in order.
func readArchive(t *testing.T, path string) []archived {
	t.Helper()
	var out []archived
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, archived{f.Name, f.Mode().Perm(), data})
		}
		return out
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, archived{hdr.Name, os.FileMode(hdr.Mode).Perm(), data})
	}
}

func fileNames(fs []archived) []string {
	var names []string
	for _, f := range fs {
		names = append(names, f.name)
	}
	return names
}

// dirSums maps each file name in dir to its sha256.
func dirSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, e := range entries {
		sums[e.Name()] = fileSHA256(t, filepath.Join(dir, e.Name()))
	}
	return sums
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
