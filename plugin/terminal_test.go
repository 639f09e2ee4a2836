package plugin_test

import (
	"bytes"
	"image"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/devicelogin/kubectl-device-login/plugin/providertest"
)

// TestTerminalLoginScreen runs a login as a person sees it: stderr is a
// real pseudo-terminal (as when kubectl runs the plugin from a shell),
// stdout a pipe (as kubectl reads it).
func TestTerminalLoginScreen(t *testing.T) {
	for _, tc := range []struct {
		name    string
		noColor bool
	}{{"color", false}, {"NO_COLOR", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := providertest.StartZitadel(t, providertest.Options{Interval: 2 * time.Second})
			s := newSession(t, p)
			ptmx, tty, err := pty.Open()
			if err != nil {
				t.Fatalf("opening a pseudo-terminal: %v", err)
			}
			defer ptmx.Close()
			pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80})
			ctx := testContext(t, time.Minute)
			cmd := exec.CommandContext(ctx, pluginBin, s.args("get-token")...)
			cmd.Env = append(baseEnv(), "TERM=xterm-256color")
			if tc.noColor {
				cmd.Env = append(cmd.Env, "NO_COLOR=1")
			} else {
				cmd.Env = withoutVar(cmd.Env, "NO_COLOR")
			}
			var stdout bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, tty
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			tty.Close()

			var mu sync.Mutex
			var screen bytes.Buffer
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 4096)
				for {
					n, err := ptmx.Read(buf)
					mu.Lock()
					screen.Write(buf[:n])
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
			read := func() string { mu.Lock(); defer mu.Unlock(); return screen.String() }
			waitFor := func(what string, ok func(string) bool) {
				t.Helper()
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
					if ok(read()) {
						return
					}
				}
				t.Fatalf("the terminal never showed %s:\n%s", what, read())
			}
			var code string
			waitFor("a user code", func(s string) bool {
				m := userCodeRE.FindStringSubmatch(stripANSI(s))
				if m != nil {
					code = m[1]
				}
				return m != nil
			})
			// The countdown is redrawn in place: at least two different
			// values, each after a carriage return.
			waitFor("a running countdown", func(s string) bool {
				return strings.Count(s, "\r\x1b[2K") >= 2 && strings.Count(s, "the code expires in 9:") >= 2
			})
			if err := p.Approve(ctx, code); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("plugin: %v\n%s", err, read())
			}
			<-done
			out := read()
			plain := stripANSI(out)
			for _, want := range []string{"Sign in to 127.0.0.1", "Open this page on any device:  " + p.Issuer() + "/device",
				"Or open this link, which fills in the code for you:", "user_code=" + code, "signed in as alice"} {
				if !strings.Contains(plain, want) {
					t.Errorf("screen lacks %q", want)
				}
			}
			// A QR code of half blocks that fits an 80x24 terminal.
			qrRows, width := 0, 0
			for _, line := range strings.Split(plain, "\n") {
				if strings.ContainsAny(line, "█▀▄") {
					qrRows++
					width = max(width, len([]rune(strings.TrimRight(line, " "))))
				}
			}
			if qrRows < 10 || qrRows > 24 || width > 80 {
				t.Errorf("QR code: %d rows, %d columns; want one that fits 80x24", qrRows, width)
			}
			if got := decodeQR(t, plain); got != p.Issuer()+"/device?user_code="+code {
				t.Errorf("the QR code says %q, want the complete sign-in address", got)
			}
			hasBold := strings.Contains(out, "\x1b[1m")
			if tc.noColor == hasBold {
				t.Errorf("NO_COLOR=%t but bold text shown: %t", tc.noColor, hasBold)
			}
			result{stdout: stdout.String()}.credential(t)
			if strings.ContainsAny(stdout.String(), "\x1b█") {
				t.Errorf("terminal output leaked onto stdout: %q", stdout.String())
			}
			if testing.Verbose() {
				t.Logf("screen:\n%s", plain)
			}
		})
	}
}

// stripANSI removes terminal control sequences and resolves carriage
// returns the way a terminal shows the final screen, roughly.
func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	lines := strings.Split(strings.ReplaceAll(b.String(), "\r\n", "\n"), "\n")
	for i, l := range lines {
		if k := strings.LastIndex(l, "\r"); k >= 0 {
			lines[i] = l[k+1:]
		}
	}
	return strings.Join(lines, "\n")
}

func withoutVar(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// decodeQR draws the half-block QR code on the screen as an image (a full
// block is two light pixels, as on a terminal with light text on a dark
// background) and reads it back with zbarimg, a real QR decoder.
func decodeQR(t *testing.T, screen string) string {
	t.Helper()
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Fatalf("zbarimg is needed to read the QR code back: apt-get install zbar-tools (%v)", err)
	}
	var rows [][]rune
	for _, line := range strings.Split(screen, "\n") {
		if strings.ContainsAny(line, "█▀▄") {
			rows = append(rows, []rune(strings.TrimPrefix(line, "  ")))
		}
	}
	const scale, margin = 6, 4
	width := 0
	for _, r := range rows {
		width = max(width, len(r))
	}
	img := image.NewGray(image.Rect(0, 0, (width+2*margin)*scale, (2*len(rows)+2*margin)*scale))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	for y, r := range rows {
		for x, ch := range r {
			top, bottom := true, true // light
			switch ch {
			case ' ':
				top, bottom = false, false
			case '▀':
				bottom = false
			case '▄':
				top = false
			}
			for half, light := range []bool{top, bottom} {
				if light {
					continue
				}
				rect := image.Rect((x+margin)*scale, (2*y+half+margin)*scale, (x+margin+1)*scale, (2*y+half+margin+1)*scale)
				draw.Draw(img, rect, image.Black, image.Point{}, draw.Src)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "qr.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	png.Encode(f, img)
	f.Close()
	out, err := exec.Command(zbar, "--quiet", "--raw", path).Output()
	if err != nil {
		t.Fatalf("zbarimg could not read the QR code: %v", err)
	}
	return strings.TrimSpace(string(out))
}
