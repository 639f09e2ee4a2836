package plugin

import (
	"fmt"
	"time"
)

// notef writes one line for the person on stderr.
func (c *config) notef(format string, args ...any) {
	fmt.Fprintf(c.Stderr, "device-login: "+format+"\n", args...)
}

// verbosef writes a step description when -v is given.
func (c *config) verbosef(format string, args ...any) {
	if c.Verbose {
		c.notef(format, args...)
	}
}

// showAuthorization tells the person where to go and which code to enter.
func (c *config) showAuthorization(a *Authorization) {
	left := a.Expiry.Sub(c.Clock.Now()).Round(time.Second)
	fmt.Fprintf(c.Stderr, "\nTo sign in to %s, open this page on any device:\n\n    %s\n\nand enter the code:\n\n    %s\n\n",
		Sanitize(c.key.Issuer, 200), a.VerificationURI, a.UserCode)
	if a.VerificationURIComplete != "" {
		fmt.Fprintf(c.Stderr, "Or open this link, which fills in the code for you:\n\n    %s\n\n", a.VerificationURIComplete)
	}
	fmt.Fprintf(c.Stderr, "Waiting for approval; the code expires in %s (at %s).\n", humanDuration(left), a.Expiry.Local().Format("15:04:05"))
}

// tick is called before each wait while polling.
func (c *config) tick(a *Authorization, left time.Duration) {}

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
