package plugin

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// Claims are the few JWT claims the plugin reads. It never verifies a
// signature: it is the token's holder, not its audience, and only uses the
// claims for expiry and for telling people who they are signed in as.
type Claims struct {
	Subject  string `json:"sub"`
	Email    string `json:"email"`
	Name     string `json:"name"`
	Username string `json:"preferred_username"`
	Expiry   int64  `json:"-"`
}

// maxJWT bounds the size of a token the plugin will decode.
const maxJWT = 64 << 10

// ParseClaims decodes the payload of a compact JWT. ok is false when the
// token is not a JWT with a JSON object payload.
func ParseClaims(token string) (c Claims, ok bool) {
	if len(token) > maxJWT {
		return c, false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return c, false
	}
	var raw struct {
		Claims
		Exp json.Number `json:"exp"`
	}
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return c, false
	}
	c = raw.Claims
	if raw.Exp != "" {
		if f, err := raw.Exp.Float64(); err == nil && f > 0 {
			c.Expiry = clampUnix(f)
		}
	}
	return c, true
}

// maxUnix is the year 9999: later instants cannot be written in RFC 3339.
const maxUnix = 253402300799

func clampUnix(f float64) int64 {
	if f > maxUnix {
		return maxUnix
	}
	return int64(f)
}

// ExpiryTime is the exp claim as a time, or the zero time when absent.
func (c Claims) ExpiryTime() time.Time {
	if c.Expiry == 0 {
		return time.Time{}
	}
	return time.Unix(c.Expiry, 0)
}
