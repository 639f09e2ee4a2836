// Command device-login-dist builds the release of kubectl-device-login: the
// plugin cross-compiled for every platform krew users run, one reproducible
// archive per platform (.tar.gz, or .zip for Windows) holding the binary and
// LICENSE, a lowercase sha256 beside each archive, and the krew plugin
// manifest rendered from krew-manifest.yaml.tmpl with the version, download
// URIs and checksums.
//
// Two runs with the same version, commit and source tree give byte-identical
// archives: the binaries are built with CGO_ENABLED=0 and -trimpath, and the
// archives have fixed entry order, times, modes and owners (see archive.go).
//
// It is a development tool, run by `make dist VERSION=vX.Y.Z` from the module
// root; the plugin binary never links it.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// DefaultPlatforms are the GOOS/GOARCH pairs of a release.
const DefaultPlatforms = "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64,windows/arm64"

// DefaultURIBase is where release archives are downloaded from; the
// version and the archive name are appended.
const DefaultURIBase = "https://github.com/devicelogin/kubectl-device-login/releases/download"

// ManifestName is the file name krew's index and validator want for the
// plugin's manifest: the plugin name plus .yaml.
const ManifestName = "device-login.yaml"

func main() {
	var c config
	flag.StringVar(&c.version, "version", "", "release version, v followed by a semantic version (e.g. v1.2.3); required")
	flag.StringVar(&c.commit, "commit", "", "commit stamped into the binary (default: git rev-parse --short=12 HEAD)")
	flag.StringVar(&c.out, "out", "dist", "directory for the archives, their .sha256 files and "+ManifestName)
	flag.StringVar(&c.platforms, "platforms", DefaultPlatforms, "comma-separated GOOS/GOARCH pairs to build")
	flag.StringVar(&c.uriBase, "uri-base", DefaultURIBase, "download URL base; each platform's uri is BASE/VERSION/ARCHIVE")
	flag.StringVar(&c.mtime, "mtime", os.Getenv("SOURCE_DATE_EPOCH"), "Unix time of every archive entry (default $SOURCE_DATE_EPOCH, else the commit time of HEAD)")
	flag.StringVar(&c.manifestCopy, "manifest", "", "also write the rendered krew manifest to this path (make dist: krew-manifest.yaml)")
	flag.StringVar(&c.pkg, "pkg", "./cmd/kubectl-device_login", "package of the plugin binary")
	flag.StringVar(&c.license, "license", "LICENSE", "license file to put in every archive")
	flag.StringVar(&c.goBin, "go", "go", "go command used to build")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "device-login-dist: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if err := run(c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "device-login-dist: %v\n", err)
		os.Exit(1)
	}
}

// config holds the command-line settings.
type config struct {
	version, commit, out, platforms, uriBase, mtime string
	manifestCopy, pkg, license, goBin               string
}

// versionRE is a leading v and a semantic version, as krew requires for
// spec.version.
var versionRE = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// Platform is one GOOS/GOARCH of a release.
type Platform struct {
	OS, Arch string
}

// Bin is the plugin's file name on this platform.
func (p Platform) Bin() string {
	if p.OS == "windows" {
		return "kubectl-device_login.exe"
	}
	return "kubectl-device_login"
}

// Archive is the name of the platform's archive for a version.
func (p Platform) Archive(version string) string {
	ext := ".tar.gz"
	if p.OS == "windows" {
		ext = ".zip"
	}
	return fmt.Sprintf("kubectl-device-login_%s_%s_%s%s", version, p.OS, p.Arch, ext)
}

// parsePlatforms reads a comma-separated list of GOOS/GOARCH pairs.
func parsePlatforms(s string) ([]Platform, error) {
	var ps []Platform
	seen := map[Platform]bool{}
	for _, f := range strings.Split(s, ",") {
		goos, goarch, ok := strings.Cut(strings.TrimSpace(f), "/")
		if !ok || goos == "" || goarch == "" || strings.Contains(goarch, "/") {
			return nil, fmt.Errorf("platform %q is not GOOS/GOARCH", f)
		}
		p := Platform{goos, goarch}
		if seen[p] {
			return nil, fmt.Errorf("platform %s/%s is listed twice", goos, goarch)
		}
		seen[p] = true
		ps = append(ps, p)
	}
	return ps, nil
}

// Built is one platform's result.
type Built struct {
	Platform
	// BinarySize is the size of the plugin binary in bytes.
	BinarySize int64
	// ArchiveName, ArchiveSize and SHA256 (lowercase hex) describe the
	// archive.
	ArchiveName string
	ArchiveSize int64
	SHA256      string
	// URI is where krew downloads the archive from.
	URI string
}

func run(c config, stdout io.Writer) error {
	if !versionRE.MatchString(c.version) {
		return fmt.Errorf("version %q is not v followed by a semantic version; run make dist VERSION=v1.2.3", c.version)
	}
	platforms, err := parsePlatforms(c.platforms)
	if err != nil {
		return err
	}
	if c.commit == "" {
		c.commit = gitOutput("rev-parse", "--short=12", "HEAD")
		if c.commit == "" {
			c.commit = "unknown"
		}
	}
	mtime, err := archiveTime(c.mtime)
	if err != nil {
		return err
	}
	license, err := os.ReadFile(c.license)
	if err != nil {
		return fmt.Errorf("reading the license for the archives: %w", err)
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "device-login-dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	var built []Built
	for _, p := range platforms {
		b, err := buildPlatform(c, p, work, license, mtime)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", p.OS, p.Arch, err)
		}
		built = append(built, b)
	}

	manifest, err := RenderManifest(c.version, built)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.out, ManifestName), manifest, 0o644); err != nil {
		return err
	}
	if c.manifestCopy != "" {
		if err := os.WriteFile(c.manifestCopy, manifest, 0o644); err != nil {
			return err
		}
	}

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "platform\tbinary bytes\tarchive\tarchive bytes\tsha256\n")
	for _, b := range built {
		fmt.Fprintf(tw, "%s/%s\t%d\t%s\t%d\t%s\n", b.OS, b.Arch, b.BinarySize, b.ArchiveName, b.ArchiveSize, b.SHA256)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "version %s, commit %s, archive times %s\n", c.version, c.commit, mtime.Format(time.RFC3339))
	fmt.Fprintf(stdout, "krew manifest: %s", filepath.Join(c.out, ManifestName))
	if c.manifestCopy != "" {
		fmt.Fprintf(stdout, " (and %s)", c.manifestCopy)
	}
	fmt.Fprintln(stdout)
	return nil
}

// buildPlatform compiles the plugin for p, archives it with the license,
// and writes the archive and its .sha256 file into c.out.
func buildPlatform(c config, p Platform, work string, license []byte, mtime time.Time) (Built, error) {
	binPath := filepath.Join(work, p.OS+"_"+p.Arch, p.Bin())
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s", c.version, c.commit)
	// -buildvcs=false: the commit is stamped by -ldflags; Go's own VCS
	// stamp would add a "modified" flag that depends on untracked files.
	cmd := exec.Command(c.goBin, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", binPath, c.pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return Built{}, fmt.Errorf("go build: %w", err)
	}
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return Built{}, err
	}
	files := []File{
		{Name: p.Bin(), Mode: 0o755, Data: bin},
		{Name: "LICENSE", Mode: 0o644, Data: license},
	}
	name := p.Archive(c.version)
	f, err := os.Create(filepath.Join(c.out, name))
	if err != nil {
		return Built{}, err
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	if p.OS == "windows" {
		err = WriteZip(w, files, mtime)
	} else {
		err = WriteTarGz(w, files, mtime)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Built{}, fmt.Errorf("writing %s: %w", name, err)
	}
	fi, err := os.Stat(filepath.Join(c.out, name))
	if err != nil {
		return Built{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// The sha256sum format, so that `sha256sum -c NAME.sha256` checks it.
	if err := os.WriteFile(filepath.Join(c.out, name+".sha256"), []byte(sum+"  "+name+"\n"), 0o644); err != nil {
		return Built{}, err
	}
	return Built{
		Platform: p, BinarySize: int64(len(bin)),
		ArchiveName: name, ArchiveSize: fi.Size(), SHA256: sum,
		URI: strings.TrimRight(c.uriBase, "/") + "/" + c.version + "/" + name,
	}, nil
}

// minZipTime is the earliest time a zip entry can carry (MS-DOS dates
// start in 1980).
var minZipTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// archiveTime is the time stamped on every archive entry: the given Unix
// seconds, else the commit time of HEAD, else 1980-01-01; never earlier
// than 1980-01-01, which zip cannot represent.
func archiveTime(s string) (time.Time, error) {
	if s == "" {
		s = gitOutput("log", "-1", "--format=%ct")
	}
	t := minZipTime
	if s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("archive time %q is not Unix seconds", s)
		}
		t = time.Unix(sec, 0).UTC()
	}
	if t.Before(minZipTime) {
		t = minZipTime
	}
	return t, nil
}

// gitOutput runs git and returns its trimmed output, or "" when git is
// missing or fails (a source tree without .git).
func gitOutput(args ...string) string {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
