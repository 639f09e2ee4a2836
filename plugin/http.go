package plugin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// newHTTPClient builds the client used for every request to the provider:
// proxies from the environment, the extra certificate authorities, a
// timeout, and no redirects for POST requests (Go would re-post a refresh
// token to wherever a 307 points).
func (c *config) newHTTPClient() (*http.Client, error) {
	if c.HTTPClient != nil {
		return c.HTTPClient, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if c.InsecureSkipTLSVerify {
		tr.TLSClientConfig.InsecureSkipVerify = true
	}
	if len(c.CertificateAuthorities) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range c.CertificateAuthorities {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("cannot read --certificate-authority %s: %s", f, describeErr(err))
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--certificate-authority %s holds no PEM certificate", f)
			}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{
		Transport: tr,
		Timeout:   c.RequestTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if via[0].Method != http.MethodGet {
				return http.ErrUseLastResponse
			}
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}, nil
}

// describeErr shortens an OS error to its cause.
func describeErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
