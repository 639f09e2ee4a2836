// Package cache keeps device-login sessions on disk: one JSON file per login
// identity, written atomically with owner-only permissions, and a lock file
// per identity so that concurrent processes never refresh or sign in twice.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/devicelogin/kubectl-device-login/cache/minijson"
)

// Key is the identity of a login: what decides which tokens a sign-in
// yields. Secrets and transport settings (client secret, endpoints,
// certificate authorities, proxies) are deliberately not part of it.
type Key struct {
	// Issuer is the provider's issuer URL without a trailing slash.
	Issuer string `json:"issuer"`
	// ClientID is the OAuth 2.0 client.
	ClientID string `json:"client_id"`
	// Scopes are requested scopes, sorted and without duplicates.
	Scopes []string `json:"scopes"`
	// ExtraParams are extra device authorization parameters as
	// "name=value", sorted and without duplicates.
	ExtraParams []string `json:"extra_params,omitempty"`
	// Token names the token handed to kubectl: "access_token" or "id_token".
	Token string `json:"token"`
}

// keyVersion is the first element of the hashed array. Changing the hashed
// form would log every user out, so it never changes within a version.
const keyVersion = "kubectl-device-login/key/v1"

// Normalize returns k with the issuer's trailing slashes removed and scopes
// and extra parameters sorted and de-duplicated.
func (k Key) Normalize() Key {
	k.Issuer = strings.TrimRight(k.Issuer, "/")
	k.Scopes = sortedSet(k.Scopes)
	k.ExtraParams = sortedSet(k.ExtraParams)
	return k
}

func sortedSet(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// ID is the file name stem of k's cache entry: the first 32 hexadecimal
// digits of the SHA-256 of the JSON array
//
//	["kubectl-device-login/key/v1", issuer, client_id, [scopes...], [extra params...], token]
//
// written as encoding/json writes it with HTML escaping off, without
// spaces, after Normalize. The form is documented in docs/cache.md and
// stays stable across releases so that upgrades keep people signed in.
func (k Key) ID() string {
	n := k.Normalize()
	b := []byte{'['}
	for _, s := range []string{keyVersion, n.Issuer, n.ClientID} {
		b = append(minijson.AppendString(b, s, false), ',')
	}
	b = append(minijson.AppendStrings(b, n.Scopes, false), ',')
	b = append(minijson.AppendStrings(b, n.ExtraParams, false), ',')
	b = append(minijson.AppendString(b, n.Token, false), ']')
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
