//go:build linux

// Package keyringtest runs a real Secret Service for tests: GNOME
// Keyring's gnome-keyring-daemon on a private D-Bus session bus, with a
// fresh login keyring unlocked by password. Tests point
// DBUS_SESSION_BUS_ADDRESS at it, so they never touch the keyring of the
// person running them, and need no desktop session: `go test ./...` works
// anywhere the Debian packages dbus-daemon, gnome-keyring and
// libsecret-tools are installed. Nothing here is linked into the plugin.
package keyringtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// Password unlocks the test keyring.
const Password = "keyringtest-password"

// Install says how to get the programs the fixture runs.
const Install = "the keyring tests run a real Secret Service: install the Debian packages dbus-daemon, gnome-keyring and libsecret-tools (apt-get install -y dbus-daemon gnome-keyring libsecret-tools)"

const (
	secretsName = "org.freedesktop.secrets"
	secretsPath = "/org/freedesktop/secrets"
	// defaultCollection is the alias go-keyring falls back to; with a
	// fresh keyring unlocked by --unlock it is the "login" collection.
	defaultCollection = "/org/freedesktop/secrets/aliases/default"
)

// Keyring is a running private session bus with an unlocked Secret
// Service.
type Keyring struct {
	// Address is the bus's DBUS_SESSION_BUS_ADDRESS.
	Address string
	// base is the environment of the daemons and of secret-tool.
	base   []string
	conn   *dbus.Conn
	daemon *os.Process
}

// Start starts dbus-daemon and gnome-keyring-daemon in a private
// directory, unlocks a new login keyring, and stops both when the test
// ends. It fails the test with Install when a program is missing.
func Start(t testing.TB) *Keyring {
	if testing.Short() {
		t.Skip("starts dbus-daemon and gnome-keyring-daemon; skipped with -short")
	}
	t.Helper()
	var missing []string
	for _, p := range []string{"dbus-daemon", "gnome-keyring-daemon", "secret-tool"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("not found on PATH: %s; %s", strings.Join(missing, ", "), Install)
	}
	// A short path: the control socket must fit in sun_path.
	dir, err := os.MkdirTemp("", "keyringtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	k := &Keyring{base: daemonEnv(dir, run)}

	bus := exec.Command("dbus-daemon", "--session", "--nofork", "--print-address=1", "--address=unix:path="+filepath.Join(dir, "bus"))
	bus.Env = k.base
	out, err := bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var busErr bytes.Buffer
	bus.Stderr = &busErr
	if err := bus.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon printed no address: %v\n%s", err, busErr.String())
	}
	k.Address = strings.TrimSpace(line)
	k.base = append(k.base, "DBUS_SESSION_BUS_ADDRESS="+k.Address)

	// --foreground keeps the daemon a child of the test, so it is stopped
	// and reaped here; --unlock reads the password on stdin and creates
	// the login keyring with it.
	gk := exec.Command("gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets")
	gk.Env = k.base
	gk.Stdin = strings.NewReader(Password)
	var gkOut bytes.Buffer
	gk.Stdout, gk.Stderr = &gkOut, &gkOut
	if err := gk.Start(); err != nil {
		t.Fatalf("starting gnome-keyring-daemon: %v", err)
	}
	t.Cleanup(func() { gk.Process.Signal(syscall.SIGCONT); gk.Process.Kill(); gk.Wait() })
	k.daemon = gk.Process

	if k.conn, err = dbus.Connect(k.Address); err != nil {
		t.Fatalf("connecting to the test bus: %v", err)
	}
	t.Cleanup(func() { k.conn.Close() })
	// The daemon claims its bus name a moment after reading the password.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var owned bool
		err := k.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, secretsName).Store(&owned)
		if err == nil && owned {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gnome-keyring-daemon did not offer the Secret Service within 20 s (%v)\n%s", err, gkOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return k
}

// daemonEnv is the environment of the daemons: the test's, without any
// bus or display of the person running it (an unlock prompt must never
// appear on a real screen), with home and runtime directories of its own.
func daemonEnv(dir, run string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY", "GNOME_KEYRING_CONTROL",
			"HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_RUNTIME_DIR="+run)
}

// Env is what a process needs to use this keyring: the bus address.
func (k *Keyring) Env() []string {
	return []string{"DBUS_SESSION_BUS_ADDRESS=" + k.Address}
}

// Lock locks the default collection, as a screen lock or `seahorse` does.
// Unlocking it then needs a password prompt, which cannot be shown here,
// so every unlock attempt fails: a locked keyring with nobody to unlock it.
func (k *Keyring) Lock(t testing.TB) {
	t.Helper()
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	err := k.conn.Object(secretsName, secretsPath).Call("org.freedesktop.Secret.Service.Lock", 0,
		[]dbus.ObjectPath{defaultCollection}).Store(&locked, &prompt)
	if err != nil || len(locked) != 1 {
		t.Fatalf("locking the keyring: %v (locked %v, prompt %s)", err, locked, prompt)
	}
}

// Freeze stops gnome-keyring-daemon (SIGSTOP) until thaw is called: a
// Secret Service that accepts calls and never answers them.
func (k *Keyring) Freeze(t testing.TB) (thaw func()) {
	t.Helper()
	if err := k.daemon.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	return func() { k.daemon.Signal(syscall.SIGCONT) }
}

// Unlock unlocks the login keyring again with its password, as the
// keyring's own settings dialog does: through gnome-keyring's
// UnlockWithMasterPassword, since `gnome-keyring-daemon --unlock` does not
// unlock a keyring that a running daemon has locked.
func (k *Keyring) Unlock(t testing.TB) {
	t.Helper()
	service := k.conn.Object(secretsName, secretsPath)
	var output dbus.Variant
	var session dbus.ObjectPath
	if err := service.Call("org.freedesktop.Secret.Service.OpenSession", 0, "plain", dbus.MakeVariant("")).Store(&output, &session); err != nil {
		t.Fatalf("opening a Secret Service session: %v", err)
	}
	defer k.conn.Object(secretsName, session).Call("org.freedesktop.Secret.Session.Close", 0)
	secret := struct {
		Session     dbus.ObjectPath
		Parameters  []byte
		Value       []byte
		ContentType string
	}{session, []byte{}, []byte(Password), "text/plain"}
	err := service.Call("org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface.UnlockWithMasterPassword", 0,
		dbus.ObjectPath("/org/freedesktop/secrets/collection/login"), secret).Err
	if err != nil {
		t.Fatalf("unlocking the keyring: %v", err)
	}
}

// Lookup reads an item with secret-tool, a client independent of the
// code under test: the secret of the item with these service and
// username (go-keyring's account) attributes.
func (k *Keyring) Lookup(t testing.TB, service, account string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "secret-tool", "lookup", "service", service, "username", account)
	cmd.Env = k.base
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 && stderr.Len() == 0 {
			return "", false
		}
		t.Fatalf("secret-tool lookup: %v\n%s", err, stderr.String())
	}
	return string(out), true
}

// Accounts lists, with secret-tool, the accounts of every item of a
// service, sorted.
func (k *Keyring) Accounts(t testing.TB, service string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "secret-tool", "search", "--all", "service", service)
	cmd.Env = k.base
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("secret-tool search: %v\n%s", err, stderr.String())
	}
	var accounts []string
	for _, line := range strings.Split(string(out)+stderr.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "attribute.username = "); ok {
			accounts = append(accounts, v)
		}
	}
	slices.Sort(accounts)
	return accounts
}

// String names the bus, for messages.
func (k *Keyring) String() string { return fmt.Sprintf("test Secret Service on %s", k.Address) }
