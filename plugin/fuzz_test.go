package plugin

// Fuzz targets for what get-token reads from outside: the host's
// KUBERNETES_EXEC_INFO, token answers and JWT claims. Their seed corpora
// in testdata/fuzz run with every `go test`; `go test -fuzz=FuzzX`
// explores. The provider's answers (device authorization, errors,
// discovery) are fuzzed in plugin/provider, the sanitizer in
// plugin/terminal.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/provider"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal/terminaltest"
)

// fuzzNow is the fixed "now" of the fuzz targets.
func fuzzNow() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }

// fuzzSettings are resolved settings for the targets.
func fuzzSettings(t *testing.T, token string) *Settings {
	t.Helper()
	s, err := Resolve(Options{
		IssuerURL: "https://issuer.example", ClientID: "kubectl", CacheDir: "/nonexistent/cache",
		Token: token, Clock: &fakeClock{now: fuzzNow()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func FuzzParseExecInfo(f *testing.F) {
	f.Add(`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}`)
	f.Add(`{"apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"cluster":{"server":"https://k","config":{"issuerURL":"https://i","clientID":"c","scopes":["openid"]}}}}`)
	f.Fuzz(func(t *testing.T, env string) {
		info, err := parseExecInfo(env)
		if err != nil {
			terminaltest.Check(t, "the error", err.Error(), false, 400)
			return
		}
		if info.APIVersion != APIVersionV1 && info.APIVersion != APIVersionV1beta1 {
			t.Fatalf("accepted apiVersion %q", info.APIVersion)
		}
		if info.ClusterConfig != nil && !json.Valid(info.ClusterConfig) {
			t.Fatalf("cluster config is not JSON: %q", info.ClusterConfig)
		}
		// The cluster's extension may supply the issuer, client, scopes
		// and parameters: they go through the same checks as the flags.
		s, err := Resolve(Options{ExecInfo: env, CacheDir: "/nonexistent/cache"})
		if err != nil {
			terminaltest.Check(t, "the error", err.Error(), false, 600)
			return
		}
		if provider.CheckURL("--issuer-url", s.Key.Issuer) != nil || s.Key.ClientID == "" {
			t.Fatalf("resolved an unusable issuer %q or client %q", s.Key.Issuer, s.Key.ClientID)
		}
		for _, v := range append(append([]string{s.Key.ClientID}, s.Key.Scopes...), s.Key.ExtraParams...) {
			terminaltest.Check(t, "a setting from the cluster extension", v, false, 1<<20)
		}
		terminaltest.Check(t, "the sign-in hint", s.loginCommand(), false, 1<<20)
	})
}

// tokenAnswer is a token endpoint's JSON answer.
type tokenAnswer struct {
	AccessToken  string      `json:"access_token"`
	RefreshToken string      `json:"refresh_token"`
	IDToken      string      `json:"id_token"`
	ExpiresIn    json.Number `json:"expires_in"`
}

func FuzzTokenAnswer(f *testing.F) {
	f.Add([]byte(`{"access_token":"at","token_type":"Bearer","refresh_token":"rt","expires_in":3600,"id_token":"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MTc5NTcxNzcwMH0.x"}`))
	f.Add([]byte(`{"access_token":"eyJhbGciOiJub25lIn0.eyJleHAiOjFlMzAwfQ.x","expires_in":-5}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var ta tokenAnswer
		if json.Unmarshal(body, &ta) != nil {
			return
		}
		issuedAt := fuzzNow()
		tok := &provider.Token{AccessToken: ta.AccessToken, RefreshToken: ta.RefreshToken, IDToken: ta.IDToken,
			Sent: issuedAt, Endpoints: provider.Endpoints{Token: "https://issuer.example/token"}}
		if n, err := ta.ExpiresIn.Int64(); err == nil {
			tok.ExpiresIn, tok.HasExpiresIn = time.Duration(max(min(n, 1<<31), -1<<31))*time.Second, true
		}
		prev := &cache.Entry{IDToken: "previous.id.token", IDTokenExpiry: fuzzNow().Add(time.Hour), IssuedAt: fuzzNow().Add(-time.Hour)}
		limit := issuedAt.Add(maxLifetime)
		for _, kind := range []string{TokenAccess, TokenID} {
			s := fuzzSettings(t, kind)
			e := newEntry(s.Key, tok, prev)
			if e.Expiry.After(limit) || e.IDTokenExpiry.After(limit) {
				t.Fatalf("expiry %s / %s beyond the %s cap", e.Expiry, e.IDTokenExpiry, maxLifetime)
			}
			if cl, ok := ParseClaims(e.AccessToken); ok && cl.Expiry != 0 && e.Expiry.After(cl.ExpiryTime()) {
				t.Fatalf("the access token's expiry %s is past its own exp %s", e.Expiry, cl.ExpiryTime())
			}
			// Every entry must be saveable, or a login would be lost.
			if _, err := json.Marshal(e); err != nil {
				t.Fatalf("the entry cannot be encoded for the cache: %v", err)
			}
			for _, now := range []time.Time{fuzzNow(), fuzzNow().Add(maxLifetime / 2)} {
				cred, ok := s.fresh(e, now)
				if !ok {
					continue
				}
				// A zero timestamp is allowed: one that would fall within
				// the current second is dropped rather than be past.
				if exp := cred.Expiry; cred.Token == "" || !exp.IsZero() && (!exp.After(now) || exp.After(limit)) {
					t.Fatalf("fresh gave token %t, timestamp %s at %s", cred.Token != "", exp, now)
				}
				var out bytes.Buffer
				if err := cred.Write(&out); err != nil {
					t.Fatal(err)
				}
				var doc struct {
					Status struct{ ExpirationTimestamp string }
				}
				if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
					t.Fatalf("the credential is not JSON: %v", err)
				}
				if ts := doc.Status.ExpirationTimestamp; cred.Expiry.IsZero() != (ts == "") {
					t.Fatalf("expirationTimestamp %q for expiry %s", ts, cred.Expiry)
				} else if _, err := time.Parse(time.RFC3339, ts); ts != "" && err != nil {
					t.Fatalf("expirationTimestamp %q: %v", doc.Status.ExpirationTimestamp, err)
				}
			}
			terminaltest.Check(t, "who", Who(e.IDToken), false, 201)
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
			terminaltest.Check(t, "who", Who(tok), false, 201)
		}
	})
}

// TestHostileSizesAreBounded checks the memory bounds the fuzz targets
// cannot reach (the fuzzer's inputs are small): oversize inputs are
// refused before they are decoded.
func TestHostileSizesAreBounded(t *testing.T) {
	huge := strings.Repeat("A", 16<<20)
	jwt := "a." + huge + ".c"
	execInfo := `{"apiVersion":"` + huge + `"}`
	for name, f := range map[string]func(){
		"a 16 MiB JWT": func() {
			if _, ok := ParseClaims(jwt); ok {
				t.Error("decoded")
			}
		},
		"a 16 MiB KUBERNETES_EXEC_INFO": func() {
			if _, err := parseExecInfo(execInfo); err == nil {
				t.Error("accepted")
			}
		},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("%s: allocated %d bytes", name, n)
		}
	}
}
