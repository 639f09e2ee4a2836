package providertest

import (
	"crypto/subtle"
	"errors"
	"html"
	"html/template"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// zitadelVerifyPage is the verification_uri: a plain HTML form where the test
// user (already "signed in", there is no password) types the user code and
// approves or denies the login. A cookie and a hidden field carry a CSRF
// token, so a script must do what a browser does: GET, then POST with the
// cookie.
type zitadelVerifyPage struct {
	store    *zitadelStore
	user     zitadelUser
	clientID string
}

const zitadelCSRFCookie = "device_login_csrf"

type zitadelVerifyView struct {
	Title, Heading string
	Message        string // shown in <p id="message">
	Error          bool
	UserCode       string
	CSRF           string
	ClientID       string
	Scopes         []string
	UserName       string
	UserEmail      string
	Form           bool
}

var zitadelVerifyTemplate = template.Must(template.New("verify").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; }
input[type=text] { font: 1.4rem ui-monospace, monospace; letter-spacing: .15em; padding: .4rem; width: 12em; text-transform: uppercase; }
button { font-size: 1rem; padding: .5rem 1.2rem; margin: 1rem .5rem 0 0; cursor: pointer; }
.approve { background: #1a7f37; color: #fff; border: 1px solid #1a7f37; border-radius: 4px; }
.deny { background: #fff; color: #b42318; border: 1px solid #b42318; border-radius: 4px; }
.error { color: #b42318; font-weight: bold; }
.ok { color: #1a7f37; font-weight: bold; }
.who { color: #555; }
</style>
</head>
<body>
<h1>{{.Heading}}</h1>
<p class="who">Signed in as {{.UserName}} ({{.UserEmail}})</p>
{{if .Message}}<p id="message" class="{{if .Error}}error{{else}}ok{{end}}">{{.Message}}</p>{{end}}
{{if .Form}}
<form method="post">
<p><label for="user_code">Enter the code shown on your device:</label></p>
<p><input type="text" id="user_code" name="user_code" value="{{.UserCode}}" autocomplete="off" autocapitalize="characters" spellcheck="false" autofocus required></p>
{{if .Scopes}}<p><b>{{.ClientID}}</b> asks for: {{range $i, $s := .Scopes}}{{if $i}}, {{end}}{{$s}}{{end}}</p>{{end}}
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" name="action" value="approve" class="approve">Approve</button>
<button type="submit" name="action" value="deny" class="deny">Deny</button>
</form>
{{end}}
</body>
</html>
`))

func (p *zitadelVerifyPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		p.showForm(w, r, http.StatusOK, r.URL.Query().Get("user_code"), "")
	case http.MethodPost:
		p.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// csrfToken returns the browser's CSRF token, setting a new cookie when it
// has none.
func (p *zitadelVerifyPage) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(zitadelCSRFCookie); err == nil && len(c.Value) >= 16 {
		return c.Value
	}
	token := zitadelRandom(16)
	http.SetCookie(w, &http.Cookie{
		Name:     zitadelCSRFCookie,
		Value:    token,
		Path:     zitadelVerifyPath,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	return token
}

func (p *zitadelVerifyPage) view() zitadelVerifyView {
	return zitadelVerifyView{
		Title:     "Device login",
		Heading:   "Sign in on your device",
		UserName:  p.user.name,
		UserEmail: p.user.email,
		ClientID:  p.clientID,
		Form:      true,
	}
}

func (p *zitadelVerifyPage) showForm(w http.ResponseWriter, r *http.Request, status int, userCode, errMsg string) {
	v := p.view()
	v.CSRF = p.csrfToken(w, r)
	v.UserCode = strings.TrimSpace(userCode)
	if errMsg != "" {
		v.Message, v.Error = errMsg, true
	}
	if v.UserCode != "" {
		d, ok := p.store.deviceByUserCode(v.UserCode)
		switch {
		case ok && d.status == zitadelPending && time.Now().Before(d.expires):
			v.Scopes = d.scopes
		case errMsg == "":
			v.Message, v.Error = "This code is unknown, expired or already used. Check it, or start the login again on your device.", true
		}
	}
	p.render(w, status, v)
}

func (p *zitadelVerifyPage) render(w http.ResponseWriter, status int, v zitadelVerifyView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = zitadelVerifyTemplate.Execute(w, v)
}

func (p *zitadelVerifyPage) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		p.showForm(w, r, http.StatusBadRequest, "", "The form could not be read.")
		return
	}
	userCode := strings.TrimSpace(r.PostForm.Get("user_code"))
	cookie, err := r.Cookie(zitadelCSRFCookie)
	field := r.PostForm.Get("csrf")
	if err != nil || field == "" || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(field)) != 1 {
		p.showForm(w, r, http.StatusForbidden, userCode, "This form has expired. Check the code and submit it again.")
		return
	}
	var approve bool
	switch r.PostForm.Get("action") {
	case "approve":
		approve = true
	case "deny":
	default:
		p.showForm(w, r, http.StatusBadRequest, userCode, "Choose Approve or Deny.")
		return
	}
	if err := p.store.decideDevice(userCode, p.user.subject, approve); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errZitadelCodeDone) {
			status = http.StatusConflict
		}
		msg := err.Error()
		p.showForm(w, r, status, userCode, strings.ToUpper(msg[:1])+msg[1:]+".")
		return
	}
	v := p.view()
	v.Form = false
	if approve {
		v.Title, v.Heading = "Device approved", "Device approved"
		v.Message = "You are signed in on your device as " + p.user.subject + ". You can close this window and go back to your terminal."
	} else {
		v.Title, v.Heading = "Request denied", "Request denied"
		v.Message = "The device was not signed in. You can close this window."
	}
	p.render(w, http.StatusOK, v)
}

var (
	zitadelMessageRE = regexp.MustCompile(`(?s)<p id="message"[^>]*>(.*?)</p>`)
	zitadelTagRE     = regexp.MustCompile(`<[^>]*>`)
)

// zitadelPageMessage extracts the message paragraph of a verification page.
func zitadelPageMessage(body string) string {
	m := zitadelMessageRE.FindStringSubmatch(body)
	if m == nil {
		if len(body) > 200 {
			body = body[:200]
		}
		return strings.TrimSpace(body)
	}
	return strings.TrimSpace(html.UnescapeString(zitadelTagRE.ReplaceAllString(m[1], "")))
}

// zitadelFormValue finds the value of the input field with this name.
func zitadelFormValue(body, name string) string {
	re := regexp.MustCompile(`<input[^>]*\bname="` + regexp.QuoteMeta(name) + `"[^>]*\bvalue="([^"]*)"`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}
