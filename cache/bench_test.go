package cache_test

// Benchmarks of the cache operations on the plugin's paths, for `make
// bench`: what a cache hit pays (Key.ID, Load) and what a refresh adds
// (Lock, Save with its two fsyncs).

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/devicelogin/kubectl-device-login/cache"
)

func benchKey() cache.Key {
	return cache.Key{Issuer: "https://auth.example.com", ClientID: "kubectl", Scopes: []string{"openid", "offline_access"}, Token: "access_token"}
}

// benchEntry is a session with tokens of real sizes (RS256 JWTs).
func benchEntry() *cache.Entry {
	tok := func(n int) string {
		b := make([]byte, n)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	jwt := func() string { return tok(27) + "." + tok(300) + "." + tok(256) }
	now := time.Now()
	return &cache.Entry{
		Key: benchKey().Normalize(), TokenEndpoint: "https://auth.example.com/oauth2/token",
		AccessToken: jwt(), Expiry: now.Add(time.Hour),
		RefreshToken: tok(32), IDToken: jwt(), IDTokenExpiry: now.Add(time.Hour), IssuedAt: now,
	}
}

// BenchmarkKeyID is one derivation of a session's file name.
func BenchmarkKeyID(b *testing.B) {
	k := benchKey()
	b.ReportAllocs()
	for b.Loop() {
		if k.ID() == "" {
			b.Fatal("empty ID")
		}
	}
}

// BenchmarkLoad reads and checks one session file, as a cache hit does.
func BenchmarkLoad(b *testing.B) {
	s := cache.Store{Dir: b.TempDir()}
	e := benchEntry()
	if err := s.Save(e); err != nil {
		b.Fatal(err)
	}
	k := benchKey()
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.Load(k)
		if err != nil || got.AccessToken != e.AccessToken {
			b.Fatalf("Load: %v", err)
		}
	}
}

// BenchmarkSave writes one session atomically (temporary file, fsync,
// rename, directory fsync), as every refresh and sign-in does.
func BenchmarkSave(b *testing.B) {
	s := cache.Store{Dir: b.TempDir()}
	e := benchEntry()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Save(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockUncontended takes and releases a session's lock that no
// one else holds, as the first process of a refresh does.
func BenchmarkLockUncontended(b *testing.B) {
	s := cache.Store{Dir: b.TempDir()}
	id := benchKey().ID()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		lock, err := s.Lock(ctx, id, nil)
		if err != nil {
			b.Fatal(err)
		}
		lock.Release()
	}
}
