package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"text/template"
)

// manifestTemplate is the krew plugin manifest with the version and the
// platforms left out.
//
//go:embed krew-manifest.yaml.tmpl
var manifestTemplate string

// sha256RE is what krew accepts as a checksum: 64 lowercase hex digits.
var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// RenderManifest renders the krew manifest for a version and its archives.
// Strings that could be misread by YAML (an all-digit checksum parses as a
// number) are written as double-quoted scalars.
func RenderManifest(version string, platforms []Built) ([]byte, error) {
	if !versionRE.MatchString(version) {
		return nil, fmt.Errorf("version %q is not v followed by a semantic version", version)
	}
	for _, p := range platforms {
		if !sha256RE.MatchString(p.SHA256) {
			return nil, fmt.Errorf("%s/%s: sha256 %q is not 64 lowercase hex digits", p.OS, p.Arch, p.SHA256)
		}
		if p.URI == "" {
			return nil, fmt.Errorf("%s/%s: no download URI", p.OS, p.Arch)
		}
	}
	t, err := template.New("krew-manifest.yaml.tmpl").Option("missingkey=error").Funcs(template.FuncMap{
		// A JSON string is a valid YAML double-quoted scalar.
		"quote": func(s string) (string, error) {
			b, err := json.Marshal(s)
			return string(b), err
		},
	}).Parse(manifestTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = t.Execute(&b, struct {
		Version   string
		Platforms []Built
	}{version, platforms})
	return b.Bytes(), err
}
