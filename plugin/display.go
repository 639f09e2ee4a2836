package plugin

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/mdp/qrterminal/v3"
)

// QR code modes (Options.QR).
const (
	QRAuto   = "auto"
	QRAlways = "always"
	QRNever  = "never"
)

// maxQRRows keeps the QR code inside an 80x24 terminal.
const maxQRRows = 24

// Terminal controls, used only when stderr is a terminal.
const (
	clearLine = "\r\x1b[2K"
	bold      = "\x1b[1m"
	dim       = "\x1b[2m"
	green     = "\x1b[32m"
	reset     = "\x1b[0m"
)

// notef writes one line for the person on stderr. While the countdown is
// shown, the line goes above it.
func (c *config) notef(format string, args ...any) {
	line := "device-login: " + fmt.Sprintf(format, args...)
	if c.status != "" {
		fmt.Fprintf(c.Stderr, "%s%s\n%s", clearLine, line, c.status)
		return
	}
	fmt.Fprintln(c.Stderr, line)
}

// verbosef writes a step description when -v is given.
func (c *config) verbosef(format string, args ...any) {
	if c.Verbose {
		c.notef(format, args...)
	}
}

// style wraps s in a terminal style when colours are allowed.
func (c *config) style(code, s string) string {
	if !c.Color {
		return s
	}
	return code + s + reset
}

// showAuthorization tells the person where to go and which code to enter,
// with a QR code of the address when it helps, and opens a browser when
// asked to.
func (c *config) showAuthorization(a *Authorization) {
	w := c.Stderr
	host := c.key.Issuer
	if u, err := url.Parse(c.key.Issuer); err == nil && u.Host != "" {
		host = u.Host
	}
	fmt.Fprintf(w, "\n%s\n\n", c.style(bold, "Sign in to "+Sanitize(host, 200)))
	fmt.Fprintf(w, "  1. Open this page on any device:  %s\n", a.VerificationURI)
	fmt.Fprintf(w, "  2. Enter the code:  %s\n", c.style(bold, a.UserCode))
	if hint := caseHint(a.UserCode); hint != "" {
		fmt.Fprintf(w, "     %s\n", c.style(dim, hint))
	}
	target := a.VerificationURIComplete
	if target != "" {
		fmt.Fprintf(w, "\n  Or open this link, which fills in the code for you:\n  %s\n", target)
	} else {
		target = a.VerificationURI
	}
	if qr := c.qrCode(target); qr != "" {
		fmt.Fprintf(w, "\n%s", qr)
	}
	fmt.Fprintln(w)
	if c.OpenBrowser != nil {
		if err := c.OpenBrowser(target); err != nil {
			c.notef("could not open a browser (%s); open the page above yourself", Sanitize(err.Error(), 200))
		}
	}
	c.lastPlain = c.Clock.Now()
	if !c.StderrIsTerminal {
		left := a.Expiry.Sub(c.Clock.Now())
		fmt.Fprintf(w, "Waiting for approval; the code expires in %s (at %s).\n", humanDuration(left), a.Expiry.Local().Format(time.TimeOnly))
	}
}

// caseHint points out capitals in a mixed-case code (Ory Hydra's codes
// are case-sensitive), so that a person reading it aloud gets it right.
func caseHint(code string) string {
	var upper []string
	hasLower := false
	for _, r := range code {
		switch {
		case unicode.IsUpper(r):
			upper = append(upper, string(r))
		case unicode.IsLower(r):
			hasLower = true
		}
	}
	if !hasLower || len(upper) == 0 {
		return ""
	}
	return "(case matters: capitals are " + strings.Join(upper, " ") + ")"
}

// qrCode renders text as a QR code of half blocks, or returns "" when the
// mode or the terminal says not to.
func (c *config) qrCode(text string) string {
	switch c.QR {
	case QRNever:
		return ""
	case QRAuto:
		if !c.StderrIsTerminal {
			return ""
		}
	}
	var b strings.Builder
	qrterminal.GenerateWithConfig(text, qrterminal.Config{
		Level:          qrterminal.L,
		Writer:         &b,
		HalfBlocks:     true,
		BlackChar:      qrterminal.BLACK_BLACK,
		WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar:      qrterminal.WHITE_WHITE,
		BlackWhiteChar: qrterminal.BLACK_WHITE,
		QuietZone:      2,
	})
	qr := b.String()
	if c.QR == QRAuto && strings.Count(qr, "\n") > maxQRRows {
		return ""
	}
	// Indent to line up with the text above.
	return "  " + strings.ReplaceAll(strings.TrimSuffix(qr, "\n"), "\n", "\n  ") + "\n"
}

// waitTick runs before each wait while polling: on a terminal it redraws
// the countdown line in place; elsewhere it writes a plain line a minute.
func (c *config) waitTick(a *Authorization, left time.Duration) {
	if c.StderrIsTerminal {
		c.status = fmt.Sprintf("%s Waiting for approval; the code expires in %s", c.style(dim, "…"), clock(left))
		fmt.Fprint(c.Stderr, clearLine+c.status)
		return
	}
	if now := c.Clock.Now(); now.Sub(c.lastPlain) >= time.Minute {
		c.lastPlain = now
		fmt.Fprintf(c.Stderr, "Still waiting for approval; the code expires in %s.\n", humanDuration(left))
	}
}

// endWait removes the countdown line.
func (c *config) endWait() {
	if c.status != "" {
		c.status = ""
		fmt.Fprint(c.Stderr, clearLine)
	}
}

// clock formats a countdown as m:ss.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d/time.Minute), int(d%time.Minute/time.Second))
}

func humanDuration(d time.Duration) string {
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
