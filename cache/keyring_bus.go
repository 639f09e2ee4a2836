//go:build !darwin && !windows

package cache

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
)

// platformChunk is the item size for a Secret Service, which has no limit
// of its own; go-keyring notes that values over 100 KiB are slow, and a
// session with a 10 KB token still fits in one item, one lookup.
const platformChunk = 64 << 10

// busReachable checks, before go-keyring is called, that a D-Bus session
// bus can be found without starting one. Without DBUS_SESSION_BUS_ADDRESS
// and without a bus socket in /run/user/UID, godbus runs `dbus-launch`
// (when dbus-x11 is installed), which starts a new, empty session bus that
// outlives the plugin: one leaked dbus-daemon per kubectl command, and
// still no Secret Service on it.
func busReachable() error {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return nil
	}
	run := filepath.Join("/run/user", strconv.Itoa(os.Getuid()))
	for _, name := range []string{"bus", "dbus-session"} {
		if _, err := os.Stat(filepath.Join(run, name)); err == nil {
			return nil
		}
	}
	return errors.New("there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set), hence no Secret Service")
}
