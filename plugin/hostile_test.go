package plugin

// Hostile server strings, beyond TestServerStringsAreSanitizedOnTheTerminal:
// every place where a provider's words can reach the person's terminal
// (device answer, device and token errors, refresh errors, discovery,
// redirects, ID token claims, verbose step lines, a remembered failure
// replayed), each fed terminal controls of every kind. A scripted
// httptest provider, because no real provider can be made to send them.

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
	"github.com/devicelogin/kubectl-device-login/plugin/terminal/terminaltest"
)

// hostile holds one of each kind of terminal control.
const hostile = "" +
	"\x1b[2J\x1b[H" + // CSI: clear the screen, cursor home
	"\x1b]0;pwned\x07" + // OSC: window title, BEL-terminated
	"\x1b]52;c;ZWNobyBwd25lZA==\x07" + // OSC 52: write the clipboard
	"\x1b]8;;https://evil.example\x1b\\link" + // OSC 8: hyperlink, ST-terminated
	"\x1bP+q\x1b\\" + // DCS
	"\u009b31m\u009d0;t\u009c" + // C1 CSI, OSC and ST as characters
	"\x9b2J" + // raw 8-bit CSI (invalid UTF-8)
	"safe\rEVIL" + // CR: overwrite the line
	"\b\b\b\x7f\x00\a" + // backspace, DEL, NUL, BEL
	"\u202eevil\u202c\u2066iso\u2069\u200f\u061c" + // bidi overrides, isolates, marks
	"\u2028\u2029\u0085" + // line and paragraph separators, NEL
	"\ufeff\u200b\u2060" // BOM, zero-width space and joiner

// hostileURLPart passes url.Parse (no ASCII controls) but holds bidi and
// invisible characters, as a discovery document may.
const hostileURLPart = "\u202eved\u2066\u200b\ufeff"

// fakeJWT is an unsigned JWT with these claims (the plugin never checks
// signatures; it only reads claims for display and expiry).
func fakeJWT(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln"
}

func TestHostileServerStringsInEveryPlace(t *testing.T) {
	long := strings.Repeat("y", 10000)
	type routes map[string]func(srv *httptest.Server, w http.ResponseWriter, r *http.Request)
	discovery := func(device, token string) func(*httptest.Server, http.ResponseWriter, *http.Request) {
		return func(srv *httptest.Server, w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]any{"issuer": srv.URL, "device_authorization_endpoint": srv.URL + device, "token_endpoint": srv.URL + token})
		}
	}
	device := func(srv *httptest.Server, w http.ResponseWriter, r *http.Request) {
		// URIs with ASCII controls are refused outright (url.Parse), so
		// these carry the bidi and invisible characters that pass it.
		writeJSON(w, 200, map[string]any{"device_code": "dc", "user_code": "WDJB" + hostile + "MJHT",
			"verification_uri": srv.URL + "/verify/" + hostileURLPart, "verification_uri_complete": srv.URL + "/verify?c=" + hostileURLPart,
			"expires_in": 60, "interval": 1})
	}
	oauthFailure := func(status int) func(*httptest.Server, http.ResponseWriter, *http.Request) {
		return func(srv *httptest.Server, w http.ResponseWriter, r *http.Request) {
			writeJSON(w, status, map[string]any{"error": "bad" + hostile, "error_description": hostile + long, "error_uri": hostile})
		}
	}
	for _, tc := range []struct {
		name    string
		routes  routes
		verbose bool
		seed    bool // an expired session with a refresh token
		runs    int
	}{
		{"device answer with controls in the URI", routes{"/.well-known/openid-configuration": discovery("/device", "/token"), "/device": func(srv *httptest.Server, w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]any{"device_code": "dc", "user_code": "C", "verification_uri": srv.URL + "/v?x=" + hostile, "expires_in": 60})
		}}, false, false, 1},
		{"device answer and poll error", routes{"/.well-known/openid-configuration": discovery("/device", "/token"), "/device": device, "/token": oauthFailure(400)}, true, false, 1},
		{"device endpoint refuses", routes{"/.well-known/openid-configuration": discovery("/device", "/token"), "/device": oauthFailure(400)}, false, false, 1},
		{"device endpoint fails at a hostile address", routes{"/.well-known/openid-configuration": discovery("/device/"+hostileURLPart, "/token/"+hostileURLPart), "/": func(_ *httptest.Server, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(503)
		}}, true, false, 1},
		{"discovery names another issuer", routes{"/.well-known/openid-configuration": func(_ *httptest.Server, w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, 200, map[string]any{"issuer": "https://evil.example/" + hostile + long})
		}}, false, false, 1},
		{"discovery answers with an error page", routes{"/.well-known/openid-configuration": func(_ *httptest.Server, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset="+hostileURLPart)
			w.WriteHeader(200)
			w.Write([]byte("<html>" + hostile + "</html>"))
		}}, true, false, 1},
		{"token endpoint redirects", routes{"/.well-known/openid-configuration": discovery("/device", "/token"), "/device": device, "/token": func(_ *httptest.Server, w http.ResponseWriter, _ *http.Request) {
			// Controls in a header break the HTTP exchange itself.
			w.Header().Set("Location", "https://evil.example/"+hostileURLPart+long)
			w.WriteHeader(307)
		}}, false, false, 1},
		{"refresh refused", routes{"/token": oauthFailure(400)}, true, true, 1},
		{"signed in as", routes{"/.well-known/openid-configuration": discovery("/device", "/token"), "/device": device, "/token": func(srv *httptest.Server, w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]any{"access_token": "at-hostile", "token_type": "Bearer", "expires_in": 3600,
				"id_token": fakeJWT(map[string]any{"sub": hostile, "email": "a@" + hostile + long, "name": hostile, "preferred_username": hostile, "exp": time.Now().Add(time.Hour).Unix()})})
		}}, true, false, 1},
		{"remembered failure replayed", routes{"/.well-known/openid-configuration": discovery("/device", "/token"), "/device": device, "/token": oauthFailure(400)}, false, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httptest.Server
			mux := http.NewServeMux()
			for path, h := range tc.routes {
				mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { h(srv, w, r) })
			}
			srv = httptest.NewServer(mux)
			defer srv.Close()
			clock := newFakeClock()
			o := Options{IssuerURL: srv.URL, ClientID: "kubectl", CacheDir: filepath.Join(t.TempDir(), "cache"),
				DeviceLogin: DeviceLoginAlways, Clock: clock}
			if tc.seed {
				o.DeviceLogin = DeviceLoginNever
				seed(t, o, cache.Entry{TokenEndpoint: srv.URL + "/token", AccessToken: "at-old", RefreshToken: "rt-old",
					IssuedAt: clock.Now().Add(-time.Hour), Expiry: clock.Now().Add(-time.Minute)})
			}
			for i := 0; i < tc.runs; i++ {
				clock.Advance(time.Second)
				r := getTokenVerbose(t, o, tc.verbose)
				out := r.stderr.String()
				if r.err != nil {
					out += "device-login: " + r.err.Error() + "\n"
				}
				t.Logf("run %d:\n%s", i+1, out)
				terminaltest.Check(t, "stderr and the error", out, true, 1000)
				if strings.Contains(out, "pwned") && strings.Contains(out, "\x1b") {
					t.Errorf("an escape sequence survived")
				}
				if tc.runs > 1 && i > 0 && (r.err == nil || !strings.Contains(r.err.Error(), "not retried")) {
					t.Errorf("run %d did not replay the remembered failure: %v", i+1, r.err)
				}
				r.noSecrets(t, "at-hostile", "at-old", "rt-old")
			}
		})
	}
}
