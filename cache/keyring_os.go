//go:build darwin || windows

package cache

// platformChunk is the item size: Windows Credential Manager refuses
// secrets over 2560 bytes, and go-keyring refuses macOS items whose
// `security` command line (base64 value, service, account) exceeds 4096
// bytes. 2 KiB fits both.
const platformChunk = 2048

// busReachable: the macOS Keychain and the Windows Credential Manager need
// no D-Bus.
func busReachable() error { return nil }
