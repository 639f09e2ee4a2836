package providertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func nodeSHA(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// TestNodeLedger checks the test-only ledger of server.mjs: issued
// tokens, refresh presentations and the state of a refresh token, through
// a rotation, a replay (which revokes the grant) and a revocation.
func TestNodeLedger(t *testing.T) {
	t.Parallel()
	p := StartNode(t, Options{})
	l := p.(Ledger)
	c := newNodeClient(t, p, nil)
	ctx := context.Background()
	state := func(rt string) string {
		t.Helper()
		st, err := l.RefreshTokenState(ctx, nodeSHA(rt))
		if err != nil {
			t.Fatal(err)
		}
		if st.Active != (st.State == "active") {
			t.Errorf("state %+v", st)
		}
		return st.State
	}

	tok1 := c.login(t)
	issued, next, err := l.Issued(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, it := range issued {
		kinds = append(kinds, it.Kind)
		if it.SHA256 != nodeSHA(it.Value) {
			t.Errorf("%s: sha256 %s does not match its value", it.Kind, it.SHA256)
		}
	}
	if want := []string{"device_code", "access_token", "refresh_token", "id_token"}; !slices.Equal(kinds, want) || next != 4 {
		t.Fatalf("ledger after a login: %v (next %d), want %v", kinds, next, want)
	}
	if issued[2].Value != tok1.RefreshToken || issued[1].Value != tok1.AccessToken || issued[1].ExpiresAt < time.Now().Unix() {
		t.Errorf("ledger does not hold the issued tokens: %+v", issued)
	}
	if got := state(tok1.RefreshToken); got != "active" {
		t.Errorf("a fresh refresh token is %s", got)
	}
	if st, _ := l.RefreshTokenState(ctx, nodeSHA("never-issued")); st.Known || st.State != "unknown" {
		t.Errorf("an unknown token: %+v", st)
	}

	tok2, err := c.refresh(ctx, tok1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if got := state(tok1.RefreshToken); got != "consumed" {
		t.Errorf("a rotated refresh token is %s", got)
	}
	if _, err := c.refresh(ctx, tok1.RefreshToken); err == nil {
		t.Fatal("a replayed refresh token was honoured")
	}
	pr, err := l.Presentations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := pr[nodeSHA(tok1.RefreshToken)]; got.Presented != 2 || got.Succeeded != 1 || !slices.Equal(got.Errors, []string{"invalid_grant"}) {
		t.Errorf("presentations of the replayed token: %+v", got)
	}
	if got := state(tok2.RefreshToken); got != "revoked" {
		t.Errorf("after a replay, the successor is %s, want revoked", got)
	}
	if _, next2, _ := l.Issued(ctx, next); next2 != next+3 {
		t.Errorf("one refresh issued %d tokens, want 3", next2-next)
	}

	tok3 := c.login(t)
	if err := p.RevokeRefreshToken(ctx, tok3.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if got := state(tok3.RefreshToken); got != "revoked" {
		t.Errorf("a revoked refresh token is %s", got)
	}
}

// TestFaultProxy sends refreshes through the proxy to a real provider:
// faults are answered without forwarding (the provider never sees the
// token), a held answer is delivered on release, and a held request whose
// client left is not forwarded.
func TestFaultProxy(t *testing.T) {
	t.Parallel()
	p := StartNode(t, Options{})
	l := p.(Ledger)
	c := newNodeClient(t, p, nil)
	fp := NewFaultProxy(t, p.Issuer(), nil)
	c.config.Endpoint.TokenURL = fp.URL() + "/token"
	ctx := context.Background()
	tok := c.login(t)

	for _, f := range Faults {
		if f == FaultTimeout {
			continue
		}
		fp.Arm(Rule{GrantType: "refresh_token", Fault: f})
		_, err := c.refresh(ctx, tok.RefreshToken)
		var re *oauth2.RetrieveError
		code, isOAuth := f.OAuthError()
		switch {
		case err == nil:
			t.Errorf("%s: the refresh succeeded", f)
		case isOAuth && (!errors.As(err, &re) || re.ErrorCode != code):
			t.Errorf("%s: %v", f, err)
		}
	}
	// x/oauth2 follows the 307 and posts the refresh token again to the
	// redirect's target, which the proxy logs and never forwards.
	redirected := 0
	for _, x := range fp.Exchanges(0) {
		switch {
		case x.Path == redirectedPath:
			redirected++
			if x.Forwarded || x.RefreshTokenSHA256 != nodeSHA(tok.RefreshToken) {
				t.Errorf("the redirected request: %+v", x)
			}
		case x.GrantType == "refresh_token" && (x.Forwarded || x.Fault == FaultNone):
			t.Errorf("a faulted refresh was forwarded: %+v", x)
		}
	}
	if redirected != 1 {
		t.Errorf("%d requests followed the 307, want 1 (x/oauth2 follows it)", redirected)
	}
	if pr, _ := l.Presentations(ctx); pr[nodeSHA(tok.RefreshToken)].Presented != 0 {
		t.Errorf("the provider saw a faulted refresh: %+v", pr)
	}

	// The timeout: the client gives up, nothing is forwarded.
	fp.Arm(Rule{GrantType: "refresh_token", Fault: FaultTimeout})
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := c.refresh(tctx, tok.RefreshToken)
	cancel()
	if err == nil {
		t.Error("a timed-out refresh succeeded")
	}

	// A held request whose client left is not forwarded.
	a := fp.Arm(Rule{GrantType: "refresh_token", Hold: HoldRequest})
	hctx, hcancel := context.WithCancel(ctx)
	go func() { <-a.Held(); hcancel() }()
	if _, err := c.refresh(hctx, tok.RefreshToken); err == nil {
		t.Error("the held refresh succeeded")
	}
	<-a.ClientGone()
	a.Release()
	<-a.Done()
	if pr, _ := l.Presentations(ctx); pr[nodeSHA(tok.RefreshToken)].Presented != 0 {
		t.Errorf("a held request of a client that left was forwarded")
	}

	// A held answer: the provider has rotated before the client gets it.
	a = fp.Arm(Rule{GrantType: "refresh_token", Hold: HoldAnswer})
	go func() {
		<-a.Held()
		if st, _ := l.RefreshTokenState(ctx, nodeSHA(tok.RefreshToken)); st.State != "consumed" {
			t.Errorf("while the answer is held, the refresh token is %s", st.State)
		}
		a.Release()
	}()
	tok2, err := c.refresh(ctx, tok.RefreshToken)
	if err != nil || tok2.RefreshToken == "" {
		t.Fatalf("held refresh: %v", err)
	}
	last := fp.Exchanges(0)
	x := last[len(last)-1]
	if !x.Forwarded || x.Status != http.StatusOK || x.RefreshTokenSHA256 != nodeSHA(tok.RefreshToken) || x.ClientGone {
		t.Errorf("last exchange %+v", x)
	}
	if !strings.HasPrefix(fp.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %s", fp.URL())
	}
}
