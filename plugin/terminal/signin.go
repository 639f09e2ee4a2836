package terminal

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

// SignIn is what the person has to do to approve a device login. Its
// strings come from the provider and are shown sanitized.
type SignIn struct {
	// Issuer is the provider signed in to; its host heads the screen.
	Issuer string
	// UserCode is the code to enter, exactly as the provider gave it.
	UserCode string
	// VerificationURI is where to enter it; VerificationURIComplete, when
	// not empty, already carries the code.
	VerificationURI         string
	VerificationURIComplete string
	// Expiry is when the code stops working.
	Expiry time.Time
}

// ShowSignIn tells the person where to go and which code to enter, with
// a QR code of the address when it helps, and opens a browser when asked
// to. now is the time of showing.
func (t *Terminal) ShowSignIn(s SignIn, now time.Time) {
	host := s.Issuer
	if u, err := url.Parse(s.Issuer); err == nil && u.Host != "" {
		host = u.Host
	}
	code := Sanitize(s.UserCode, 512)
	t.Printf("\n%s\n\n", t.style(bold, "Sign in to "+host))
	t.Printf("  1. Open this page on any device:  %s\n", s.VerificationURI)
	t.Printf("  2. Enter the code:  %s\n", t.style(bold, code))
	if hint := caseHint(code); hint != "" {
		t.Printf("     %s\n", t.style(dim, hint))
	}
	target := s.VerificationURIComplete
	if target != "" {
		t.Printf("\n  Or open this link, which fills in the code for you:\n  %s\n", target)
	} else {
		target = s.VerificationURI
	}
	if qr := t.qrCode(Sanitize(target, 2048)); qr != "" {
		t.Printf("\n%s", Safe(qr))
	}
	t.Printf("\n")
	if t.o.OpenBrowser != nil {
		if err := t.o.OpenBrowser(Sanitize(target, 2048)); err != nil {
			t.Notef("could not open a browser (%v); open the page above yourself", err)
		}
	}
	t.lastPlain = now
	if !t.o.IsTerminal {
		t.Printf("Waiting for approval; the code expires in %s (at %s).\n", HumanDuration(s.Expiry.Sub(now)), s.Expiry.Local().Format(time.TimeOnly))
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
func (t *Terminal) qrCode(text string) string {
	switch t.o.QR {
	case QRNever:
		return ""
	case QRAlways:
	default:
		if !t.o.IsTerminal {
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
	if t.o.QR != QRAlways && strings.Count(qr, "\n") > maxQRRows {
		return ""
	}
	// Indent to line up with the text above.
	return "  " + strings.ReplaceAll(strings.TrimSuffix(qr, "\n"), "\n", "\n  ") + "\n"
}

// Waiting runs before each wait while polling, with the time left on the
// code: on a terminal it redraws the countdown line in place; elsewhere it
// writes a plain line a minute.
func (t *Terminal) Waiting(left time.Duration, now time.Time) {
	if t.o.IsTerminal {
		t.status = fmt.Sprintf("%s Waiting for approval; the code expires in %s", t.style(dim, "…"), Clock(left))
		fmt.Fprint(t.w, clearLine+t.status)
		return
	}
	if now.Sub(t.lastPlain) >= time.Minute {
		t.lastPlain = now
		t.Printf("Still waiting for approval; the code expires in %s.\n", HumanDuration(left))
	}
}

// EndWait removes the countdown line.
func (t *Terminal) EndWait() {
	if t.status != "" {
		t.status = ""
		fmt.Fprint(t.w, clearLine)
	}
}
