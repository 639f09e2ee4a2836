// Package terminal is where kubectl-device-login talks to a person, on
// stderr: notes, the sign-in screen with its QR code, the countdown while
// waiting for approval, and colour. Everything that came from outside
// (a provider's answer, a kubeconfig, a file) passes Sanitize on its way
// out; nothing here ever writes to stdout.
package terminal

import (
	"fmt"
	"io"
	"time"
)

// Options say what the stderr of this run can show.
type Options struct {
	// IsTerminal tells whether a person sees stderr as it is written: the
	// countdown is then redrawn in place, and QRAuto shows a QR code.
	IsTerminal bool
	// Color allows bold and coloured text (main sets it for terminals
	// when NO_COLOR is unset).
	Color bool
	// Verbose makes Verbosef print.
	Verbose bool
	// QR is QRAuto (default), QRAlways or QRNever.
	QR string
	// OpenBrowser, when set, is called with the sign-in address.
	OpenBrowser func(url string) error
}

// Terminal writes messages for a person. The zero value discards them.
type Terminal struct {
	w io.Writer
	o Options
	// status is the countdown line shown on a terminal, if any.
	status string
	// lastPlain is when the last plain waiting line was written.
	lastPlain time.Time
}

// New returns a Terminal that writes to w (stderr).
func New(w io.Writer, o Options) *Terminal {
	if w == nil {
		w = io.Discard
	}
	return &Terminal{w: w, o: o}
}

// IsTerminal tells whether a person sees stderr as it is written.
func (t *Terminal) IsTerminal() bool { return t.o.IsTerminal }

// Verbose tells whether -v was given.
func (t *Terminal) Verbose() bool { return t.o.Verbose }

// Safe is text of this program's own, styles included, that Notef and
// Printf print as it is.
type Safe string

// clean makes every argument that may come from outside safe to print:
// strings, errors and Stringers pass Sanitize; Safe and numbers stay.
func clean(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case Safe:
			out[i] = string(v)
		case string:
			out[i] = Sanitize(v, maxArg)
		case error:
			out[i] = Sanitize(v.Error(), maxArg)
		case fmt.Stringer:
			out[i] = Sanitize(v.String(), maxArg)
		default:
			out[i] = a
		}
	}
	return out
}

// maxArg bounds one argument of a message.
const maxArg = 2000

// Notef writes one line for the person, prefixed with "device-login: ".
// While the countdown is shown, the line goes above it. The format is
// this program's own; the arguments pass Sanitize unless they are Safe.
func (t *Terminal) Notef(format string, args ...any) {
	if t == nil || t.w == nil {
		return
	}
	line := "device-login: " + fmt.Sprintf(format, clean(args)...)
	if t.status != "" {
		fmt.Fprintf(t.w, "%s%s\n%s", clearLine, line, t.status)
		return
	}
	fmt.Fprintln(t.w, line)
}

// Verbosef writes a step description when -v is given.
func (t *Terminal) Verbosef(format string, args ...any) {
	if t != nil && t.o.Verbose {
		t.Notef(format, args...)
	}
}

// Printf writes text for the person without a prefix, with the same
// sanitizing as Notef.
func (t *Terminal) Printf(format string, args ...any) {
	if t == nil || t.w == nil {
		return
	}
	fmt.Fprintf(t.w, format, clean(args)...)
}

// Terminal controls, used only when colour is allowed or stderr is a
// terminal.
const (
	clearLine = "\r\x1b[2K"
	bold      = "\x1b[1m"
	dim       = "\x1b[2m"
	green     = "\x1b[32m"
	reset     = "\x1b[0m"
)

// style wraps s (which it sanitizes) in a terminal style when colours
// are allowed.
func (t *Terminal) style(code, s string) Safe {
	s = Sanitize(s, maxArg)
	if !t.o.Color {
		return Safe(s)
	}
	return Safe(code + s + reset)
}

// Green is s in green when colours are allowed.
func (t *Terminal) Green(s string) Safe { return t.style(green, s) }

// Clock formats a countdown as m:ss.
func Clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d/time.Minute), int(d%time.Minute/time.Second))
}

// HumanDuration formats a duration for a sentence: "45 s", "2 min",
// "3m20s", "1h05m".
func HumanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	}
}
