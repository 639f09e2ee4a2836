package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"
)

// The archive writers and the manifest template, in process. The whole
// release (cross builds, krew's validator, krew install) is tested by
// TestKrew in package plugin.

var testFiles = []File{
	{Name: "kubectl-device_login", Mode: 0o755, Data: bytes.Repeat([]byte("binary "), 5000)},
	{Name: "LICENSE", Mode: 0o644, Data: []byte("Apache License\n")},
}

var testTime = time.Date(2026, 11, 26, 17, 0, 1, 0, time.UTC)

func TestWriteTarGz(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteTarGz(&a, testFiles, testTime); err != nil {
		t.Fatal(err)
	}
	// The same inputs with another time zone and sub-second noise.
	if err := WriteTarGz(&b, testFiles, testTime.Add(300*time.Millisecond).In(time.FixedZone("X", 3600))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two archives of the same files differ")
	}
	var c bytes.Buffer
	if err := WriteTarGz(&c, testFiles, testTime.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("the entry time does not reach the archive")
	}

	zr, err := gzip.NewReader(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || zr.Comment != "" || !zr.ModTime.IsZero() || zr.Extra != nil {
		t.Errorf("gzip header carries name %q, comment %q, time %v, extra %x", zr.Name, zr.Comment, zr.ModTime, zr.Extra)
	}
	tr := tar.NewReader(zr)
	for i, want := range testFiles {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if hdr.Name != want.Name || hdr.Typeflag != tar.TypeReg || hdr.Mode != int64(want.Mode) ||
			!hdr.ModTime.Equal(testTime) || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" ||
			!hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() || hdr.Format != tar.FormatUSTAR {
			t.Errorf("entry %d: %+v", i, hdr)
		}
		data, _ := io.ReadAll(tr)
		if !bytes.Equal(data, want.Data) {
			t.Errorf("entry %d: content differs", i)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("more than %d entries: %v", len(testFiles), err)
	}
}

func TestWriteZip(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteZip(&a, testFiles, testTime); err != nil {
		t.Fatal(err)
	}
	if err := WriteZip(&b, testFiles, testTime.Add(300*time.Millisecond).In(time.FixedZone("X", 3600))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two archives of the same files differ")
	}
	zr, err := zip.NewReader(bytes.NewReader(a.Bytes()), int64(a.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Comment != "" || len(zr.File) != len(testFiles) {
		t.Fatalf("comment %q, %d entries", zr.Comment, len(zr.File))
	}
	for i, f := range zr.File {
		want := testFiles[i]
		if f.Name != want.Name || f.Mode() != want.Mode || !f.Modified.Equal(testTime) || f.Method != zip.Deflate || f.Comment != "" {
			t.Errorf("entry %d: %s mode %v time %v method %d", i, f.Name, f.Mode(), f.Modified, f.Method)
		}
		// The only extra field is the extended timestamp (0x5455) that
		// archive/zip writes for a set time: flags 1, the same instant.
		if len(f.Extra) != 9 || binary.LittleEndian.Uint16(f.Extra) != 0x5455 || f.Extra[4] != 1 ||
			int64(binary.LittleEndian.Uint32(f.Extra[5:])) != testTime.Unix() {
			t.Errorf("entry %d: extra fields %x", i, f.Extra)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(data, want.Data) {
			t.Errorf("entry %d: content differs", i)
		}
	}
}

func TestRenderManifest(t *testing.T) {
	built := []Built{
		{Platform: Platform{"linux", "amd64"}, URI: "https://example.com/v1.2.3/a.tar.gz", SHA256: strings.Repeat("1", 64)},
		{Platform: Platform{"windows", "arm64"}, URI: "https://example.com/v1.2.3/b.zip", SHA256: strings.Repeat("ab", 32)},
	}
	m, err := RenderManifest("v1.2.3", built)
	if err != nil {
		t.Fatal(err)
	}
	s := string(m)
	for _, want := range []string{
		"apiVersion: krew.googlecontainertools.github.com/v1alpha2\nkind: Plugin\nmetadata:\n  name: device-login\n",
		`  version: "v1.2.3"`,
		// An all-digit checksum stays a string.
		`    sha256: "` + strings.Repeat("1", 64) + `"`,
		"        os: windows\n        arch: arm64\n    uri: \"https://example.com/v1.2.3/b.zip\"\n",
		"    bin: kubectl-device_login.exe\n    files:\n    - from: kubectl-device_login.exe\n      to: .\n    - from: LICENSE\n      to: .\n",
		"kubectl device-login setup",
		"kubectl device-login --help",
		"homepage: https://github.com/devicelogin/kubectl-device-login\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("manifest lacks %q:\n%s", want, s)
		}
	}
	if n := strings.Count(s, "  - selector:"); n != 2 {
		t.Errorf("%d platforms, want 2", n)
	}

	upper := append([]Built(nil), built...)
	upper[1].SHA256 = strings.ToUpper(upper[1].SHA256)
	if _, err := RenderManifest("v1.2.3", upper); err == nil {
		t.Error("an uppercase sha256 was accepted")
	}
	if _, err := RenderManifest("1.2.3", built); err == nil {
		t.Error("a version without a leading v was accepted")
	}
}

func TestVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"v1.2.3": true, "v0.0.0-krewtest": true, "v1.0.0-rc.1+build.5": true,
		"1.2.3": false, "v1.2": false, "v01.2.3": false, "beef36b-dirty": false, "v1.2.3-": false, "": false,
	} {
		if versionRE.MatchString(v) != ok {
			t.Errorf("version %q accepted: %t, want %t", v, !ok, ok)
		}
	}
}

func TestArchiveTime(t *testing.T) {
	got, err := archiveTime("1795717407")
	if err != nil || !got.Equal(time.Unix(1795717407, 0)) {
		t.Errorf("archiveTime: %v, %v", got, err)
	}
	if got, _ := archiveTime("0"); !got.Equal(minZipTime) {
		t.Errorf("a time before 1980 gives %v, want %v (zip cannot go earlier)", got, minZipTime)
	}
	if _, err := archiveTime("yesterday"); err == nil {
		t.Error("a non-number was accepted")
	}
}

func TestParsePlatforms(t *testing.T) {
	ps, err := parsePlatforms(DefaultPlatforms)
	if err != nil || len(ps) != 6 {
		t.Fatalf("%v %v", ps, err)
	}
	if ps[4].Bin() != "kubectl-device_login.exe" || ps[4].Archive("v1.0.0") != "kubectl-device-login_v1.0.0_windows_amd64.zip" ||
		ps[0].Archive("v1.0.0") != "kubectl-device-login_v1.0.0_linux_amd64.tar.gz" {
		t.Errorf("names: %s %s", ps[4].Bin(), ps[4].Archive("v1.0.0"))
	}
	for _, bad := range []string{"linux", "linux/amd64,linux/amd64", "linux/amd64/v2", "/amd64"} {
		if _, err := parsePlatforms(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
