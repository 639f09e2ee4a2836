package providertest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// zitadelStore is the in-memory storage behind the zitadel provider. It
// implements op.Storage, op.DeviceAuthorizationStorage and
// op.ClientCredentialsStorage for a few fixed clients (the public one, and
// those Options add) and one user, and adds what zitadel's op leaves to the
// storage: one-time device codes, rotating refresh tokens with reuse
// detection, and revocation of a whole login ("family") at once.
//
// Every map is guarded by mu. Nothing here is package-level state.
type zitadelStore struct {
	client  *zitadelClient            // the public client
	clients map[string]*zitadelClient // every client, by ID
	user    zitadelUser
	key     *zitadelKey

	accessTTL time.Duration

	mu       sync.Mutex
	devices  map[string]*zitadelDevice // by device code
	byUser   map[string]string         // normalized user code -> device code
	access   map[string]*zitadelAccess // by access token ID
	refresh  map[string]*zitadelRefresh
	families map[string]*zitadelFamily // by family ID
}

// zitadelDevice is one device authorization request.
type zitadelDevice struct {
	deviceCode, userCode, clientID string
	scopes                         []string
	resource                       []string // audiences requested for access tokens
	codeChallenge                  string   // S256 PKCE challenge, when one was sent
	expires                        time.Time
	status                         zitadelDeviceStatus
	subject                        string
	authTime                       time.Time
	familyID                       string // set once the code was redeemed
}

type zitadelDeviceStatus int

const (
	zitadelPending zitadelDeviceStatus = iota
	zitadelApproved
	zitadelDenied
	zitadelRedeemed
)

// zitadelFamily is one login: everything issued from one device code,
// across refresh token rotations.
type zitadelFamily struct {
	id       string
	subject  string
	clientID string
	scopes   []string
	resource []string
	authTime time.Time
	revoked  bool
}

type zitadelRefresh struct {
	token    string
	familyID string
	accessID string // the access token issued together with this refresh token
	used     bool
}

type zitadelAccess struct {
	id       string
	familyID string
	subject  string
	clientID string
	scopes   []string
	expires  time.Time
}

// zitadelTokenRequest is what the store hands to op, and to our own token
// issuance, for both the device code grant and the refresh token grant. It
// implements op.RefreshTokenRequest and op.IDTokenRequest. GetAudience is
// the ID token's audience (the client); resource is the access token's.
type zitadelTokenRequest struct {
	subject    string
	clientID   string
	scopes     []string
	resource   []string
	authTime   time.Time
	familyID   string
	deviceCode string
}

func (r *zitadelTokenRequest) GetAMR() []string            { return nil }
func (r *zitadelTokenRequest) GetAudience() []string       { return []string{r.clientID} }
func (r *zitadelTokenRequest) GetAuthTime() time.Time      { return r.authTime }
func (r *zitadelTokenRequest) GetClientID() string         { return r.clientID }
func (r *zitadelTokenRequest) GetScopes() []string         { return r.scopes }
func (r *zitadelTokenRequest) GetSubject() string          { return r.subject }
func (r *zitadelTokenRequest) SetCurrentScopes(s []string) { r.scopes = s }

// zitadelAccessClaims is the op.TokenRequest used to sign a JWT access
// token: its audience is the requested resource only.
type zitadelAccessClaims struct {
	subject  string
	audience []string
	scopes   []string
}

func (r *zitadelAccessClaims) GetSubject() string    { return r.subject }
func (r *zitadelAccessClaims) GetAudience() []string { return r.audience }
func (r *zitadelAccessClaims) GetScopes() []string   { return r.scopes }

type zitadelUser struct {
	subject, email, name, givenName, familyName string
}

var (
	errZitadelNotFound       = errors.New("not found")
	errZitadelNoAuthCodeFlow = errors.New("this test provider supports only the device authorization grant")
	errZitadelDeviceSpent    = errors.New("device code already redeemed")
)

func newZitadelStore(clients []*zitadelClient, user zitadelUser, key *zitadelKey, accessTTL time.Duration) *zitadelStore {
	byID := map[string]*zitadelClient{}
	for _, c := range clients {
		byID[c.id] = c
	}
	return &zitadelStore{
		client:    clients[0],
		clients:   byID,
		user:      user,
		key:       key,
		accessTTL: accessTTL,
		devices:   map[string]*zitadelDevice{},
		byUser:    map[string]string{},
		access:    map[string]*zitadelAccess{},
		refresh:   map[string]*zitadelRefresh{},
		families:  map[string]*zitadelFamily{},
	}
}

// zitadelRandom returns n random bytes, base64url encoded.
func zitadelRandom(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// zitadelNormalizeUserCode makes "bcdf ghjk", "BCDF-GHJK" and "bcdfghjk" the same
// code: people type codes by hand.
func zitadelNormalizeUserCode(code string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(code) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ---- op.DeviceAuthorizationStorage ----

func (s *zitadelStore) StoreDeviceAuthorization(_ context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	norm := zitadelNormalizeUserCode(userCode)
	if old, ok := s.byUser[norm]; ok {
		if d := s.devices[old]; d != nil && time.Now().Before(d.expires) {
			return op.ErrDuplicateUserCode
		}
	}
	if _, ok := s.devices[deviceCode]; ok {
		return errors.New("device code collision")
	}
	s.devices[deviceCode] = &zitadelDevice{
		deviceCode: deviceCode,
		userCode:   userCode,
		clientID:   clientID,
		scopes:     slices.Clone(scopes),
		expires:    expires,
	}
	s.byUser[norm] = deviceCode
	return nil
}

// GetDeviceAuthorizatonState reports the state of a device code. A code
// that is approved is redeemed by this very call: op issues tokens when it
// sees Done, so the next call for the same code gets an error. A code past
// its lifetime reports neither Done nor Denied, so op answers
// expired_token even when it was approved too late to be redeemed in time.
func (s *zitadelStore) GetDeviceAuthorizatonState(_ context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[deviceCode]
	if !ok || d.clientID != clientID {
		return nil, errZitadelNotFound
	}
	state := &op.DeviceAuthorizationState{
		ClientID: d.clientID,
		Audience: slices.Clone(d.resource),
		Scopes:   slices.Clone(d.scopes),
		Expires:  d.expires,
	}
	if d.status == zitadelRedeemed {
		return nil, errZitadelDeviceSpent
	}
	if !time.Now().Before(d.expires) {
		return state, nil
	}
	switch d.status {
	case zitadelApproved:
		d.status = zitadelRedeemed
		state.Done = true
		state.Subject = d.subject
		state.AuthTime = d.authTime
	case zitadelDenied:
		state.Denied = true
	}
	return state, nil
}

// deviceCodeSpent reports whether a device code was redeemed already, and
// if so revokes everything that was issued from it (RFC 6749 section 4.1.2
// asks the same of a replayed authorization code).
func (s *zitadelStore) deviceCodeSpent(deviceCode string) (known, spent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[deviceCode]
	if !ok {
		return false, false
	}
	if d.status != zitadelRedeemed {
		return true, false
	}
	if d.familyID != "" {
		s.revokeFamilyLocked(d.familyID)
	}
	return true, true
}

// setDeviceResource records the audiences a device authorization asked for.
func (s *zitadelStore) setDeviceResource(deviceCode string, resource []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[deviceCode]; ok {
		d.resource = slices.Clone(resource)
	}
}

// setDeviceChallenge records the PKCE challenge of a device authorization.
func (s *zitadelStore) setDeviceChallenge(deviceCode, challenge string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[deviceCode]; ok {
		d.codeChallenge = challenge
	}
}

// deviceChallenge is the PKCE challenge a device authorization was sent
// with, or "".
func (s *zitadelStore) deviceChallenge(deviceCode string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[deviceCode]; ok {
		return d.codeChallenge
	}
	return ""
}

// deviceByUserCode returns a copy of the pending device authorization
// for a user code as typed by a person.
func (s *zitadelStore) deviceByUserCode(userCode string) (zitadelDevice, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[s.byUser[zitadelNormalizeUserCode(userCode)]]
	if !ok {
		return zitadelDevice{}, false
	}
	return *d, true
}

var (
	errZitadelCodeUnknown = errors.New("unknown code: check it and try again")
	errZitadelCodeExpired = errors.New("this code has expired: start the login again on your device")
	errZitadelCodeDone    = errors.New("this code was already used")
)

// decideDevice approves or denies the device authorization with this user
// code on behalf of subject.
func (s *zitadelStore) decideDevice(userCode, subject string, approve bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[s.byUser[zitadelNormalizeUserCode(userCode)]]
	switch {
	case !ok || userCode == "":
		return errZitadelCodeUnknown
	case !time.Now().Before(d.expires):
		return errZitadelCodeExpired
	case d.status != zitadelPending:
		return errZitadelCodeDone
	}
	if approve {
		d.status = zitadelApproved
		d.subject = subject
		d.authTime = time.Now().UTC().Truncate(time.Second)
	} else {
		d.status = zitadelDenied
	}
	return nil
}

// ---- token issuance ----

func (s *zitadelStore) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.newAccessLocked(req, "")
	return a.id, a.expires, nil
}

func (s *zitadelStore) newAccessLocked(req op.TokenRequest, familyID string) *zitadelAccess {
	a := &zitadelAccess{
		id:       zitadelRandom(16),
		familyID: familyID,
		subject:  req.GetSubject(),
		clientID: s.client.id,
		scopes:   slices.Clone(req.GetScopes()),
		expires:  time.Now().UTC().Add(s.accessTTL),
	}
	if r, ok := req.(interface{ GetClientID() string }); ok {
		a.clientID = r.GetClientID()
	}
	s.access[a.id] = a
	return a
}

// CreateAccessAndRefreshTokens issues an access token and a refresh token.
// Without a current refresh token it starts a new family (a new login);
// with one it rotates: the current token is spent, and spending a token
// twice revokes the family, new tokens included, as Ory Hydra does. The
// check is made here, under the lock, so two concurrent refreshes with one
// token cannot both win.
func (s *zitadelStore) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	var familyID string
	if currentRefreshToken != "" {
		cur, ok := s.refresh[currentRefreshToken]
		if !ok {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("unknown refresh token")
		}
		fam := s.families[cur.familyID]
		if fam == nil || fam.revoked {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token revoked")
		}
		if cur.used {
			s.revokeFamilyLocked(fam.id)
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token reused: the session is revoked")
		}
		cur.used = true
		// As in Hydra, the access token issued with the spent refresh
		// token dies with it.
		delete(s.access, cur.accessID)
		familyID = fam.id
	} else {
		fam := &zitadelFamily{
			id:       zitadelRandom(16),
			subject:  req.GetSubject(),
			clientID: s.client.id,
			scopes:   slices.Clone(req.GetScopes()),
			authTime: time.Now().UTC(),
		}
		if r, ok := req.(*zitadelTokenRequest); ok {
			fam.clientID = r.clientID
			fam.resource = slices.Clone(r.resource)
			fam.authTime = r.authTime
			if d := s.devices[r.deviceCode]; d != nil {
				d.familyID = fam.id
			}
		}
		s.families[fam.id] = fam
		familyID = fam.id
	}
	if r, ok := req.(*zitadelTokenRequest); ok {
		r.familyID = familyID
	}
	a := s.newAccessLocked(req, familyID)
	rt := &zitadelRefresh{token: zitadelRandom(32), familyID: familyID, accessID: a.id}
	s.refresh[rt.token] = rt
	return a.id, rt.token, a.expires, nil
}

// TokenRequestByRefreshToken looks a refresh token up. Presenting a token
// that was already spent revokes its family at once.
func (s *zitadelStore) TokenRequestByRefreshToken(_ context.Context, refreshToken string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[refreshToken]
	if !ok {
		return nil, errors.New("unknown refresh token")
	}
	fam := s.families[rt.familyID]
	if fam == nil || fam.revoked {
		return nil, errors.New("refresh token revoked")
	}
	if rt.used {
		s.revokeFamilyLocked(fam.id)
		return nil, errors.New("refresh token reused: the session is revoked")
	}
	return &zitadelTokenRequest{
		subject:  fam.subject,
		clientID: fam.clientID,
		scopes:   slices.Clone(fam.scopes),
		resource: slices.Clone(fam.resource),
		authTime: fam.authTime,
		familyID: fam.id,
	}, nil
}

// revokeFamilyLocked ends a login: its refresh tokens and access tokens.
func (s *zitadelStore) revokeFamilyLocked(familyID string) {
	fam := s.families[familyID]
	if fam == nil {
		return
	}
	fam.revoked = true
	for id, a := range s.access {
		if a.familyID == familyID {
			delete(s.access, id)
		}
	}
}

func (s *zitadelStore) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, fam := range s.families {
		if fam.subject == userID && fam.clientID == clientID {
			s.revokeFamilyLocked(id)
		}
	}
	return nil
}

// GetRefreshTokenInfo tells op's revocation endpoint whether a token is
// one of our refresh tokens; the token itself serves as its ID.
func (s *zitadelStore) GetRefreshTokenInfo(_ context.Context, clientID, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	fam := s.families[rt.familyID]
	if fam == nil {
		return "", "", op.ErrInvalidRefreshToken
	}
	return fam.subject, token, nil
}

// RevokeToken revokes a refresh token (its whole family: the login) or an
// access token. Unknown tokens are not an error (RFC 7009 section 2.2).
func (s *zitadelStore) RevokeToken(_ context.Context, tokenOrTokenID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[tokenOrTokenID]; ok {
		fam := s.families[rt.familyID]
		if fam != nil && fam.clientID != clientID {
			return oidc.ErrUnauthorizedClient().WithDescription("token was issued to another client")
		}
		s.revokeFamilyLocked(rt.familyID)
		return nil
	}
	if a, ok := s.access[tokenOrTokenID]; ok {
		if a.clientID != clientID {
			return oidc.ErrUnauthorizedClient().WithDescription("token was issued to another client")
		}
		delete(s.access, tokenOrTokenID)
	}
	return nil
}

// ---- keys ----

// zitadelKey is the RSA key generated at start. It serves both as the
// signing key and as the one public key of the key set.
type zitadelKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *zitadelKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *zitadelKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k *zitadelKey) ID() string                                  { return k.id }
func (k *zitadelKey) Use() string                                 { return "sig" }

// Key returns the private key to op's signer and the public key to op's
// key set; op asks through two interfaces with the same method name, so
// the public view is a separate type.
func (k *zitadelKey) Key() any { return k.key }

type zitadelPublicKey struct{ *zitadelKey }

func (k zitadelPublicKey) Key() any { return &k.key.PublicKey }

func (s *zitadelStore) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *zitadelStore) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *zitadelStore) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{zitadelPublicKey{s.key}}, nil
}

// ---- the authorization code flow is not offered ----

func (s *zitadelStore) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, oidc.ErrUnauthorizedClient().WithParent(errZitadelNoAuthCodeFlow).WithDescription("%s", errZitadelNoAuthCodeFlow)
}

func (s *zitadelStore) AuthRequestByID(context.Context, string) (op.AuthRequest, error) {
	return nil, errZitadelNoAuthCodeFlow
}

func (s *zitadelStore) AuthRequestByCode(context.Context, string) (op.AuthRequest, error) {
	return nil, errZitadelNoAuthCodeFlow
}

func (s *zitadelStore) SaveAuthCode(context.Context, string, string) error {
	return errZitadelNoAuthCodeFlow
}

func (s *zitadelStore) DeleteAuthRequest(context.Context, string) error {
	return errZitadelNoAuthCodeFlow
}

// ---- op.OPStorage ----

func (s *zitadelStore) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	c, ok := s.clients[clientID]
	if !ok {
		return nil, errZitadelNotFound
	}
	return c, nil
}

// AuthorizeClientIDSecret checks a confidential client's secret, however
// it was sent: op reads HTTP Basic and the form alike.
func (s *zitadelStore) AuthorizeClientIDSecret(_ context.Context, clientID, secret string) error {
	c, ok := s.clients[clientID]
	if !ok || c.secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1 {
		return errors.New("unknown client or wrong secret")
	}
	return nil
}

// ---- op.ClientCredentialsStorage ----

// ClientCredentials authenticates a client for the client_credentials
// grant: op asks nothing else of it.
func (s *zitadelStore) ClientCredentials(ctx context.Context, clientID, secret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, clientID, secret); err != nil {
		// op answers any other error as server_error.
		return nil, oidc.ErrInvalidClient().WithDescription("invalid client_id / client_secret").WithParent(err)
	}
	return s.clients[clientID], nil
}

// ClientCredentialsTokenRequest is the token request of a client acting
// for itself: its subject is the client.
func (s *zitadelStore) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	return &zitadelAccessClaims{subject: clientID, scopes: scopes}, nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does
// the work.
func (s *zitadelStore) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *zitadelStore) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.fillUserinfo(info, req.GetSubject(), scopes)
}

func (s *zitadelStore) fillUserinfo(info *oidc.UserInfo, subject string, scopes []string) error {
	if subject != s.user.subject {
		return errZitadelNotFound
	}
	info.Subject = s.user.subject
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.Name = s.user.name
		info.GivenName = s.user.givenName
		info.FamilyName = s.user.familyName
		info.PreferredUsername = s.user.subject
	}
	if slices.Contains(scopes, oidc.ScopeEmail) {
		info.Email = s.user.email
		info.EmailVerified = true
	}
	return nil
}

func (s *zitadelStore) liveAccess(tokenID, subject string) (zitadelAccess, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.access[tokenID]
	if !ok || a.subject != subject || !time.Now().Before(a.expires) {
		return zitadelAccess{}, false
	}
	if fam := s.families[a.familyID]; fam != nil && fam.revoked {
		return zitadelAccess{}, false
	}
	return *a, true
}

func (s *zitadelStore) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	a, ok := s.liveAccess(tokenID, subject)
	if !ok {
		return errors.New("access token is not valid")
	}
	return s.fillUserinfo(info, a.subject, a.scopes)
}

func (s *zitadelStore) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, _ string) error {
	a, ok := s.liveAccess(tokenID, subject)
	if !ok {
		return errors.New("access token is not valid")
	}
	info := new(oidc.UserInfo)
	if err := s.fillUserinfo(info, a.subject, a.scopes); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Scope = a.scopes
	resp.ClientID = a.clientID
	return nil
}

func (s *zitadelStore) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *zitadelStore) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT profile grant not supported")
}

func (s *zitadelStore) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT profile grant not supported")
}

func (s *zitadelStore) Health(context.Context) error { return nil }

// ---- the client ----

// zitadelClient is one client: no redirect URIs; public (no secret) or
// confidential; the device code and refresh token grants, or the client
// credentials grant.
type zitadelClient struct {
	id         string
	scopes     []string
	idTokenTTL time.Duration
	// secret and authMethod are set for a confidential client.
	secret     string
	authMethod oidc.AuthMethod
	grants     []oidc.GrantType
	// requirePKCE makes the device flow take an S256 code_challenge and
	// its code_verifier.
	requirePKCE bool
}

func (c *zitadelClient) GetID() string                    { return c.id }
func (c *zitadelClient) RedirectURIs() []string           { return nil }
func (c *zitadelClient) PostLogoutRedirectURIs() []string { return nil }
func (c *zitadelClient) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeNative
}
func (c *zitadelClient) AuthMethod() oidc.AuthMethod {
	if c.authMethod == "" {
		return oidc.AuthMethodNone
	}
	return c.authMethod
}
func (c *zitadelClient) ResponseTypes() []oidc.ResponseType { return nil }
func (c *zitadelClient) GrantTypes() []oidc.GrantType {
	if c.grants == nil {
		return []oidc.GrantType{oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken}
	}
	return c.grants
}
func (c *zitadelClient) LoginURL(string) string { return "" }

// AccessTokenType is what op would use by itself; our token endpoint
// picks per request (JWT when an audience was granted).
func (c *zitadelClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *zitadelClient) IDTokenLifetime() time.Duration      { return c.idTokenTTL }
func (c *zitadelClient) DevMode() bool                       { return false }
func (c *zitadelClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *zitadelClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *zitadelClient) IsScopeAllowed(scope string) bool { return slices.Contains(c.scopes, scope) }

// IDTokenUserinfoClaimsAssertion puts the profile and email claims in the
// ID token even though an access token is issued alongside (op leaves them
// out otherwise).
func (c *zitadelClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *zitadelClient) ClockSkew() time.Duration             { return 0 }

// interface checks
var (
	_ op.Storage                    = (*zitadelStore)(nil)
	_ op.DeviceAuthorizationStorage = (*zitadelStore)(nil)
	_ op.ClientCredentialsStorage   = (*zitadelStore)(nil)
	_ op.CanSetUserinfoFromRequest  = (*zitadelStore)(nil)
	_ op.RefreshTokenRequest        = (*zitadelTokenRequest)(nil)
	_ op.IDTokenRequest             = (*zitadelTokenRequest)(nil)
	_ op.Client                     = (*zitadelClient)(nil)
	_ op.SigningKey                 = (*zitadelKey)(nil)
	_ op.Key                        = zitadelPublicKey{}
)
