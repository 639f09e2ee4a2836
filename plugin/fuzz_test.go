package plugin

// Fuzz targets for everything the plugin reads from outside: the host's
// KUBERNETES_EXEC_INFO, the provider's JSON answers (device authorization,
// token, error, discovery) and JWT claims, and the sanitizer that stands
// between server strings and the terminal. Their seed corpora in
// testdata/fuzz run with every `go test`; `go test -fuzz=FuzzX` explores.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"

	"github.com/devicelogin/kubectl-device-login/cache"
)

// fuzzNow is the fixed "now" of the fuzz targets.
func fuzzNow() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }

// checkText fails when s could act on a terminal: control characters
// (newlines only where allowed), format characters such as bidi overrides,
// line separators, or invalid UTF-8; or when it is longer than max runes.
func checkText(t *testing.T, what, s string, newlines bool, max int) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s is not valid UTF-8: %q", what, s)
	}
	for _, r := range s {
		if r == '\n' && newlines {
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			t.Fatalf("%s carries %U: %q", what, r, s)
		}
	}
	if n := utf8.RuneCountInString(s); n > max {
		t.Fatalf("%s is %d runes long (limit %d)", what, n, max)
	}
}

// fuzzConfig is a resolved configuration for the targets.
func fuzzConfig(t *testing.T, token string) *config {
	t.Helper()
	c, err := (&Options{
		IssuerURL: "https://issuer.example", ClientID: "kubectl", CacheDir: "/nonexistent/cache",
		Token: token, QR: QRNever, Clock: &fakeClock{now: fuzzNow()},
	}).resolve(ExecInfo{APIVersion: APIVersionV1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func FuzzParseExecInfo(f *testing.F) {
	f.Add(`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}`)
	f.Add(`{"apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"cluster":{"server":"https://k","config":{"issuerURL":"https://i","clientID":"c","scopes":["openid"]}}}}`)
	f.Fuzz(func(t *testing.T, env string) {
		info, err := ParseExecInfo(env)
		if err != nil {
			checkText(t, "the error", err.Error(), false, 400)
			return
		}
		if info.APIVersion != APIVersionV1 && info.APIVersion != APIVersionV1beta1 {
			t.Fatalf("accepted apiVersion %q", info.APIVersion)
		}
		if info.ClusterConfig != nil && !json.Valid(info.ClusterConfig) {
			t.Fatalf("cluster config is not JSON: %q", info.ClusterConfig)
		}
		// The cluster's extension may supply the issuer and client: it
		// goes through the same checks as the flags.
		c, err := (&Options{CacheDir: "/nonexistent/cache"}).resolve(info)
		if err != nil {
			checkText(t, "the error", err.Error(), false, 600)
			return
		}
		if checkURL("--issuer-url", c.IssuerURL) != nil || c.ClientID == "" {
			t.Fatalf("resolved an unusable issuer %q or client %q", c.IssuerURL, c.ClientID)
		}
	})
}

func FuzzDeviceAuthorization(f *testing.F) {
	f.Add([]byte(`{"device_code":"d","user_code":"WDJB-MJHT","verification_uri":"https://x/v","verification_uri_complete":"https://x/v?c=WDJB-MJHT","expires_in":600,"interval":5}`))
	f.Add([]byte(`{"device_code":"d","user_code":"a\u001b[2Jb","verification_url":"https://x/v","expires_in":9223372036854775807,"interval":-1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var da oauth2.DeviceAuthResponse
		sent := time.Now()
		if json.Unmarshal(body, &da) != nil {
			return
		}
		c := fuzzConfig(t, TokenAccess)
		a, err := c.authorization(&da, sent)
		if err != nil {
			checkText(t, "the error", err.Error(), false, 400)
			return
		}
		for what, s := range map[string]string{"user code": a.UserCode, "verification URI": a.VerificationURI, "complete URI": a.VerificationURIComplete} {
			checkText(t, what, s, false, maxShown)
		}
		if a.UserCode == "" || a.VerificationURI == "" {
			t.Fatalf("accepted an empty user code or URI: %+v", a)
		}
		if a.Interval < time.Second || a.Interval > maxInterval {
			t.Fatalf("interval %s", a.Interval)
		}
		if left := a.Expiry.Sub(fuzzNow()); left <= 0 || left > maxCodeLifetime {
			t.Fatalf("code lifetime %s", left)
		}
		// What the person sees.
		var out bytes.Buffer
		c.Stderr = &out
		c.showAuthorization(a)
		checkText(t, "the prompt", out.String(), true, 4000)
	})
}

// tokenAnswer is a token endpoint's JSON answer as x/oauth2 reads it.
type tokenAnswer struct {
	AccessToken  string      `json:"access_token"`
	TokenType    string      `json:"token_type"`
	RefreshToken string      `json:"refresh_token"`
	ExpiresIn    json.Number `json:"expires_in"`
}

func FuzzTokenAnswer(f *testing.F) {
	f.Add([]byte(`{"access_token":"at","token_type":"Bearer","refresh_token":"rt","expires_in":3600,"id_token":"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MTc5NTcxNzcwMH0.x"}`))
	f.Add([]byte(`{"access_token":"eyJhbGciOiJub25lIn0.eyJleHAiOjFlMzAwfQ.x","expires_in":-5}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var ta tokenAnswer
		var raw map[string]any
		if json.Unmarshal(body, &ta) != nil || json.Unmarshal(body, &raw) != nil {
			return
		}
		n, _ := ta.ExpiresIn.Int64()
		tok := (&oauth2.Token{AccessToken: ta.AccessToken, TokenType: ta.TokenType, RefreshToken: ta.RefreshToken, ExpiresIn: n}).WithExtra(raw)
		issuedAt := fuzzNow()
		prev := &cache.Entry{IDToken: "previous.id.token", IDTokenExpiry: fuzzNow().Add(time.Hour), IssuedAt: fuzzNow().Add(-time.Hour)}
		limit := issuedAt.Add(maxLifetime)
		for _, kind := range []string{TokenAccess, TokenID} {
			c := fuzzConfig(t, kind)
			e := c.newEntry(tok, issuedAt, endpoints{Token: "https://issuer.example/token"}, prev)
			if e.Expiry.After(limit) || e.IDTokenExpiry.After(limit) {
				t.Fatalf("expiry %s / %s beyond the %s cap", e.Expiry, e.IDTokenExpiry, maxLifetime)
			}
			// Every entry must be saveable, or a login would be lost.
			if _, err := json.Marshal(e); err != nil {
				t.Fatalf("the entry cannot be encoded for the cache: %v", err)
			}
			for _, now := range []time.Time{fuzzNow(), fuzzNow().Add(maxLifetime / 2)} {
				token, exp, ok := c.fresh(e, now)
				if !ok {
					continue
				}
				// A zero timestamp is allowed: one that would fall within
				// the current second is dropped rather than be past.
				if token == "" || !exp.IsZero() && (!exp.After(now) || exp.After(limit)) {
					t.Fatalf("fresh gave token %t, timestamp %s at %s", token != "", exp, now)
				}
				var out bytes.Buffer
				if err := WriteCredential(&out, APIVersionV1, token, exp); err != nil {
					t.Fatal(err)
				}
				var doc struct {
					Status struct{ ExpirationTimestamp string }
				}
				if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
					t.Fatalf("the credential is not JSON: %v", err)
				}
				if ts := doc.Status.ExpirationTimestamp; exp.IsZero() != (ts == "") {
					t.Fatalf("expirationTimestamp %q for expiry %s", ts, exp)
				} else if _, err := time.Parse(time.RFC3339, ts); ts != "" && err != nil {
					t.Fatalf("expirationTimestamp %q: %v", doc.Status.ExpirationTimestamp, err)
				}
			}
			checkText(t, "who", Who(e.IDToken), false, 201)
		}
	})
}

func FuzzOAuthErrorAnswer(f *testing.F) {
	f.Add([]byte(`{"error":"invalid_grant","error_description":"refresh token rt-123 was revoked"}`), "invalid_grant", "refresh token was revoked", 400, "")
	f.Add([]byte(`<html>bad gateway</html>`), "", "", 502, "")
	f.Add([]byte(`{"access_token":"stolen"}`), "", "", 307, "https://evil.example/\x1b]8;;x\x07")
	f.Fuzz(func(t *testing.T, body []byte, code, desc string, status int, location string) {
		ctx := context.Background()
		retrieve := func(body []byte) error {
			return &oauth2.RetrieveError{
				Response:         &http.Response{StatusCode: status, Header: http.Header{"Location": {location}}},
				Body:             body,
				ErrorCode:        code,
				ErrorDescription: desc,
			}
		}
		got := classify(ctx, retrieve(body))
		// The body never shapes the message: it may hold tokens.
		if without := classify(ctx, retrieve(nil)); got.Error() != without.Error() {
			t.Fatalf("the message depends on the response body:\n%q\n%q", got, without)
		}
		if wrapped := classify(ctx, fmt.Errorf("oauth2: cannot fetch token: %w", retrieve(body))); wrapped.Error() != got.Error() {
			t.Fatalf("a wrapped error classifies differently: %q vs %q", wrapped, got)
		}
		var oe *oauthError
		var te *transientError
		if !errors.As(got, &oe) && !errors.As(got, &te) {
			t.Fatalf("classified as %T", got)
		}
		checkText(t, "the message", got.Error(), false, 700)

		// x/oauth2's other errors quote the body in their text: only
		// fixed messages may come out.
		fixed := map[string]bool{
			"the provider's answer is not valid JSON":                  true,
			"the provider's answer has no access_token":                true,
			"the connection broke while reading the provider's answer": true,
			"the provider's answer could not be used":                  true,
		}
		for _, prefix := range []string{"oauth2: cannot parse json: ", "oauth2: server response missing access_token", "oauth2: cannot fetch token: ", ""} {
			if msg := classify(ctx, errors.New(prefix+string(body))).Error(); !fixed[msg] {
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
			checkText(t, "the error", err.Error(), false, 500)
			return
		}
		if strings.TrimRight(d.Issuer, "/") != issuer {
			t.Fatalf("accepted issuer %q", d.Issuer)
		}
	})
}

func FuzzParseClaims(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImVtYWlsIjoiYUBleGFtcGxlIiwiZXhwIjoxNzk1NzE3NzAwfQ.sig", []byte(`{"sub":"alice","exp":1795717700}`))
	f.Add("a.b.c", []byte(`{"exp":1e300,"name":"\u001b]52;c;AAAA\u0007","preferred_username":"\u202eevil"}`))
	f.Fuzz(func(t *testing.T, token string, payload []byte) {
		for _, tok := range []string{token, "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(payload) + ".sig"} {
			cl, ok := ParseClaims(tok)
			if ok {
				if cl.Expiry < 0 || cl.Expiry > maxUnix {
					t.Fatalf("exp %d outside [0, year 9999]", cl.Expiry)
				}
				if cl.Expiry != 0 {
					s := cl.ExpiryTime().UTC().Format(time.RFC3339)
					if _, err := time.Parse(time.RFC3339, s); err != nil {
						t.Fatalf("exp %d does not print as RFC 3339: %q", cl.Expiry, s)
					}
				}
			}
			checkText(t, "who", Who(tok), false, 201)
		}
	})
}

func FuzzSanitize(f *testing.F) {
	f.Add("plain text", 80)
	f.Add("a\x1b[31mred\x1b[0m\r\nb\a\u202e\u2066x\u200b\u2028\xff\xfe\u009b2J", 5)
	f.Fuzz(func(t *testing.T, s string, max int) {
		m := int(uint(max) % 2048)
		out := Sanitize(s, m)
		checkText(t, "the result", out, false, m+1)
		if Sanitize(out, m+1) != out {
			t.Fatalf("sanitizing again changed %q", out)
		}
		if utf8.RuneCountInString(out) == m+1 && !strings.HasSuffix(out, "…") {
			t.Fatalf("a result at the limit does not end in an ellipsis: %q", out)
		}
	})
}

// allocated is how many bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileSizesAreBounded checks the memory bounds the fuzz targets
// cannot reach (the fuzzer's inputs are small): oversize inputs are
// refused before they are decoded.
func TestHostileSizesAreBounded(t *testing.T) {
	huge := strings.Repeat("A", 16<<20)
	jwt := "a." + huge + ".c"
	execInfo := `{"apiVersion":"` + huge + `"}`
	c := fuzzConfig(t, TokenAccess)
	for name, f := range map[string]func(){
		"a 16 MiB JWT": func() {
			if _, ok := ParseClaims(jwt); ok {
				t.Error("decoded")
			}
		},
		"a 16 MiB KUBERNETES_EXEC_INFO": func() {
			if _, err := ParseExecInfo(execInfo); err == nil {
				t.Error("accepted")
			}
		},
		"a 16 MiB user code": func() {
			if _, err := c.authorization(&oauth2.DeviceAuthResponse{DeviceCode: "d", UserCode: huge, VerificationURI: "https://x/v"}, fuzzNow()); err == nil {
				t.Error("accepted")
			}
		},
		"16 MiB of text to sanitize": func() {
			if out := Sanitize(huge, 300); utf8.RuneCountInString(out) != 301 {
				t.Errorf("%d runes", utf8.RuneCountInString(out))
			}
		},
	} {
		if n := allocated(f); n > 64<<10 {
			t.Errorf("%s: allocated %d bytes", name, n)
		}
	}
}
