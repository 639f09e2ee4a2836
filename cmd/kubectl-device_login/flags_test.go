package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
)

// TestQRCheckedByEveryCommand: a --qr value the plugin cannot use is
// refused by every command that takes --qr, in the same words, and setup
// does not store it in the kubeconfig (where every later get-token would
// fail on it).
func TestQRCheckedByEveryCommand(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "config"))
	identity := []string{"--issuer-url=https://127.0.0.1:1", "--client-id=x", "--cache-dir=" + t.TempDir()}
	runQR := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append(args, identity...), &stdout, &stderr)
		if stdout.Len() > 0 {
			t.Errorf("%q: stdout %q", args, stdout.String())
		}
		return code, stderr.String()
	}
	wantCode, want := runQR("get-token", "--qr=bogus")
	if wantCode != 1 || want != "device-login: --qr must be auto, always, never, not \"bogus\"\n" {
		t.Fatalf("get-token --qr=bogus: exit %d, stderr %q", wantCode, want)
	}
	checked := 0
	for _, cmd := range commands() {
		if flagSet(cmd, &values{}).Lookup("qr") == nil {
			continue
		}
		args := []string{cmd.name, "--qr=bogus"}
		if cmd.name == "setup" {
			args = append(args, "--dry-run")
		}
		if code, got := runQR(args...); code != wantCode || got != want {
			t.Errorf("%q: exit %d, stderr %q; want exit %d, %q", args, code, got, wantCode, want)
		}
		checked++
	}
	if checked < 3 {
		t.Errorf("only %d commands take --qr", checked)
	}
}
