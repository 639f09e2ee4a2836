package provider

// Fuzz targets for what the provider sends: device authorization answers,
// error answers and discovery documents. Their seed corpora in
// testdata/fuzz run with every `go test`; `go test -fuzz=FuzzX` explores.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/devicelogin/kubectl-device-login/plugin/terminal"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal/terminaltest"
)

// fuzzNow is the fixed "now" of the fuzz targets.
func fuzzNow() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }

// fixedClock always says the same time and never sleeps.
type fixedClock struct{ now time.Time }

func (c fixedClock) Now() time.Time                                   { return c.now }
func (c fixedClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func FuzzDeviceAuthorization(f *testing.F) {
	f.Add([]byte(`{"device_code":"d","user_code":"WDJB-MJHT","verification_uri":"https://x/v","verification_uri_complete":"https://x/v?c=WDJB-MJHT","expires_in":600,"interval":5}`))
	f.Add([]byte(`{"device_code":"d","user_code":"a\u001b[2Jb","verification_url":"https://x/v","expires_in":9223372036854775807,"interval":-1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var da oauth2.DeviceAuthResponse
		sent := time.Now()
		if json.Unmarshal(body, &da) != nil {
			return
		}
		c := &Client{Clock: fixedClock{fuzzNow()}}
		d, err := c.checkDeviceAuth(&da, sent)
		if err != nil {
			terminaltest.Check(t, "the error", err.Error(), false, 400)
			return
		}
		for what, s := range map[string]string{"user code": d.UserCode, "verification URI": d.VerificationURI, "complete URI": d.VerificationURIComplete} {
			terminaltest.Check(t, what, s, false, maxShown)
		}
		if d.UserCode == "" || d.VerificationURI == "" {
			t.Fatalf("accepted an empty user code or URI: %+v", d)
		}
		if d.Interval < time.Second || d.Interval > maxInterval {
			t.Fatalf("interval %s", d.Interval)
		}
		if left := d.Expiry.Sub(fuzzNow()); left <= 0 || left > maxCodeLifetime {
			t.Fatalf("code lifetime %s", left)
		}
		// What the person sees.
		var out bytes.Buffer
		terminal.New(&out, terminal.Options{}).ShowSignIn(terminal.SignIn{
			Issuer: "https://issuer.example", UserCode: d.UserCode, VerificationURI: d.VerificationURI,
			VerificationURIComplete: d.VerificationURIComplete, Expiry: d.Expiry,
		}, fuzzNow())
		terminaltest.Check(t, "the prompt", out.String(), true, 4000)
	})
}

// errorFields keeps what a well-formed error answer may say: its code,
// description and URI. Everything else in a body (tokens a careless
// server echoes) must not shape a message.
func errorFields(body []byte) []byte {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	kept := map[string]any{}
	for _, k := range []string{"error", "error_description", "error_uri"} {
		if v, ok := m[k]; ok {
			kept[k] = v
		}
	}
	b, _ := json.Marshal(kept)
	return b
}

func FuzzOAuthErrorAnswer(f *testing.F) {
	f.Add([]byte(`{"error":"invalid_grant","error_description":"refresh token rt-123 was revoked"}`), "invalid_grant", "refresh token was revoked", 400, "")
	f.Add([]byte(`<html>bad gateway</html>`), "", "", 502, "")
	f.Add([]byte(`{"access_token":"stolen"}`), "", "", 307, "https://evil.example/\x1b]8;;x\x07")
	f.Fuzz(func(t *testing.T, body []byte, code, desc string, status int, location string) {
		ctx := context.Background()
		const u = "https://issuer.example/token"
		retrieve := func(body []byte) error {
			return &oauth2.RetrieveError{
				Response:         &http.Response{StatusCode: status, Header: http.Header{"Location": {location}}},
				Body:             body,
				ErrorCode:        code,
				ErrorDescription: desc,
			}
		}
		got := classify(ctx, u, retrieve(body))
		// Only a well-formed error's own fields shape the message.
		if only := classify(ctx, u, retrieve(errorFields(body))); got.Error() != only.Error() {
			t.Fatalf("the message depends on more of the body than its error fields:\n%q\n%q", got, only)
		}
		if wrapped := classify(ctx, u, fmt.Errorf("oauth2: cannot fetch token: %w", retrieve(body))); wrapped.Error() != got.Error() {
			t.Fatalf("a wrapped error classifies differently: %q vs %q", wrapped, got)
		}
		var oe *OAuthError
		var he *httpError
		var be *badAnswerError
		switch {
		case errors.As(got, &oe):
			if !validCode(oe.Code) || GrantRejected(got) != (oe.Code == "invalid_grant" || oe.Code == "invalid_request") {
				t.Fatalf("error code %q", oe.Code)
			}
		case errors.As(got, &he), errors.As(got, &be):
			if GrantRejected(got) {
				t.Fatalf("%T says the grant was rejected", got)
			}
		default:
			t.Fatalf("classified as %T", got)
		}
		terminaltest.Check(t, "the message", got.Error(), false, 700)

		// x/oauth2's other errors quote the body in their text: they
		// come out as one fixed message.
		for _, prefix := range []string{"oauth2: cannot parse json: ", "oauth2: server response missing access_token", "oauth2: cannot fetch token: ", ""} {
			if msg := classify(ctx, u, errors.New(prefix+string(body))); !errors.As(msg, &be) || strings.Contains(msg.Error(), string(body)) && len(body) > 3 {
				t.Fatalf("a body-carrying error came out as %q", msg)
			}
		}
	})
}

func FuzzParseDiscovery(f *testing.F) {
	f.Add([]byte(`{"issuer":"https://issuer.example/","device_authorization_endpoint":"https://issuer.example/device","token_endpoint":"https://issuer.example/token"}`))
	f.Add([]byte(`{"issuer":"https://evil.example\u202e/"}`))
	const issuer = "https://issuer.example"
	const url = issuer + "/.well-known/openid-configuration"
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := parseDiscovery(body, url, issuer)
		if err != nil {
			terminaltest.Check(t, "the error", err.Error(), false, 500)
			return
		}
		if strings.TrimRight(d.Issuer, "/") != issuer {
			t.Fatalf("accepted issuer %q", d.Issuer)
		}
	})
}

// TestHugeUserCodeIsRefusedCheaply: a 16 MiB user code (beyond what the
// fuzzer makes) is refused without copying it around.
func TestHugeUserCodeIsRefusedCheaply(t *testing.T) {
	huge := strings.Repeat("A", 16<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := (&Client{}).checkDeviceAuth(&oauth2.DeviceAuthResponse{DeviceCode: "d", UserCode: huge, VerificationURI: "https://x/v"}, fuzzNow())
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Error("accepted")
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("allocated %d bytes", n)
	}
}
