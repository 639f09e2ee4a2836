package plugin

// Differential tests of what the hit path reads and writes without
// encoding/json: KUBERNETES_EXEC_INFO and the ExecCredential.

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// FuzzExecRequestMatchesEncodingJSON is the differential test of the
// KUBERNETES_EXEC_INFO reader: for any input it accepts what
// json.Unmarshal accepts, refuses what it refuses, and gives the same
// values. (parseExecInfo falls back to json.Unmarshal on a refusal, for
// its error; the test holds the reader to both halves anyway, so that
// the hit path does not quietly take the slow road.)
func FuzzExecRequestMatchesEncodingJSON(f *testing.F) {
	f.Add(`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}`)
	f.Add(`{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"cluster":{"server":"https://k","certificate-authority-data":"LS0t","config":{"issuerURL":"https://i","clientID":"c"}},"interactive":true}}`)
	f.Fuzz(func(t *testing.T, env string) {
		var want, got execRequest
		werr := json.Unmarshal([]byte(env), &want)
		gerr := got.read(env)
		shown := env[:min(len(env), 300)]
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("json.Unmarshal says %v, read says %v, for %q", werr, gerr, shown)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("for %q\njson.Unmarshal gives %#v (cluster %#v)\nread gives           %#v (cluster %#v)", shown, want, want.Spec.Cluster, got, got.Spec.Cluster)
		}
	})
}

// writeWithEncodingJSON is how Credential.Write wrote the ExecCredential
// before it had its own encoder, and the reference it must match.
func writeWithEncodingJSON(c Credential) []byte {
	type status struct {
		ExpirationTimestamp string `json:"expirationTimestamp,omitempty"`
		Token               string `json:"token"`
	}
	doc := struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Status     status `json:"status"`
	}{Kind: "ExecCredential", APIVersion: c.APIVersion, Status: status{Token: c.Token}}
	if !c.Expiry.IsZero() {
		doc.Status.ExpirationTimestamp = c.Expiry.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	b, _ := json.Marshal(doc)
	return append(b, '\n')
}

func compareWrite(t *testing.T, c Credential) {
	t.Helper()
	var got bytes.Buffer
	if err := c.Write(&got); err != nil {
		t.Fatal(err)
	}
	if want := writeWithEncodingJSON(c); !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("Write(%#v) wrote\n%s\njson.Marshal wrote\n%s", c, got.Bytes(), want)
	}
}

// TestCredentialWriteMatchesEncodingJSON checks Write's corners: no
// expiry, a time zone and fractions, strings that json.Marshal escapes.
func TestCredentialWriteMatchesEncodingJSON(t *testing.T) {
	for _, c := range []Credential{
		{APIVersion: APIVersionV1, Token: "eyJhbGciOiJSUzI1NiJ9.e30.sig", Expiry: time.Date(2026, 11, 29, 12, 0, 0, 999999999, time.FixedZone("", -7*3600))},
		{APIVersion: APIVersionV1beta1, Token: "opaque"},
		{APIVersion: "<&>\u2028", Token: "\x00\"\\\xff\n</script>"},
	} {
		compareWrite(t, c)
	}
}

// FuzzCredentialWriteMatchesEncodingJSON is its differential test.
func FuzzCredentialWriteMatchesEncodingJSON(f *testing.F) {
	f.Add(APIVersionV1, "token", int64(1795995231), int64(500), false)
	f.Add("<>&", "\u2029\xfe", int64(-62135596800), int64(0), true)
	f.Fuzz(func(t *testing.T, apiVersion, token string, sec, nsec int64, zero bool) {
		c := Credential{APIVersion: apiVersion, Token: token, Expiry: time.Unix(sec, nsec)}
		if zero {
			c.Expiry = time.Time{}
		}
		compareWrite(t, c)
	})
}

// FuzzClusterConfigMatchesEncodingJSON is the differential test of the
// cluster extension's reader: the same refusals and the same values as a
// json.Decoder with DisallowUnknownFields. (applyCluster falls back to
// that Decoder on a refusal, for its error.)
func FuzzClusterConfigMatchesEncodingJSON(f *testing.F) {
	f.Add(`{"issuerURL":"https://auth.example.com","clientID":"kubectl","scopes":["openid","offline_access"],"extraParams":["audience=k8s"]}`)
	f.Add(`{"IssuerUrl":"a","CLIENTID":"b","ſcopes":null,"extraparams":[],"scopes":["x"],"scopes":[null]}`)
	f.Add(`{"issuerURL":"a","other":1}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var want, got ClusterConfig
		dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
		dec.DisallowUnknownFields()
		werr := dec.Decode(&want)
		gerr := got.read(raw)
		shown := raw[:min(len(raw), 300)]
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("the Decoder says %v, read says %v, for %q", werr, gerr, shown)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("for %q\nthe Decoder gives %#v\nread gives        %#v", shown, want, got)
		}
	})
}
