package kubetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// pki is the throwaway certificate authority of one cluster.
type pki struct {
	caCert *x509.Certificate
	caKey  crypto.Signer
	caPEM  []byte
}

func newPKI() (*pki, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kubetest-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &pki{caCert: cert, caKey: key, caPEM: pemBlock("CERTIFICATE", der)}, nil
}

// issue signs a leaf certificate; it returns the certificate and key PEM.
func (p *pki) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, key.Public(), p.caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), nil
}

// serving issues a TLS serving certificate for 127.0.0.1, ::1 and localhost
// plus any extra host names or IP addresses.
func (p *pki) serving(hosts ...string) (certPEM, keyPEM []byte, err error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kubetest-serving"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return p.issue(tmpl)
}

// client issues a client certificate; kube-apiserver maps CN to the user
// name and O to the groups.
func (p *pki) client(user string, groups ...string) (certPEM, keyPEM []byte, err error) {
	return p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

func (p *pki) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	return pool
}

// serviceAccountKey makes the key pair kube-apiserver signs and verifies
// service-account tokens with.
func serviceAccountKey() (privPEM, pubPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("PRIVATE KEY", privDER), pemBlock("PUBLIC KEY", pubDER), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("kubetest: serial number: %v", err))
	}
	return n
}

func keyPair(certPEM, keyPEM []byte) (tls.Certificate, error) {
	return tls.X509KeyPair(certPEM, keyPEM)
}

// CA is a throwaway certificate authority. Give the same CA to Config.CA and
// to an OIDC provider's serving certificate to need only one CA PEM.
type CA struct {
	// PEM is the CA certificate.
	PEM []byte
	pki *pki
}

// NewCA makes a CA valid for a day (ECDSA P-256).
func NewCA() (*CA, error) {
	p, err := newPKI()
	if err != nil {
		return nil, err
	}
	return &CA{PEM: p.caPEM, pki: p}, nil
}

// ServingCert issues a TLS serving certificate for 127.0.0.1, ::1 and
// localhost, plus the given host names or IP addresses.
func (ca *CA) ServingCert(hosts ...string) (certPEM, keyPEM []byte, err error) {
	return ca.pki.serving(hosts...)
}

// WriteServingCert writes a new serving certificate and its key into dir as
// serving-*.crt and serving-*.key and returns their paths.
func (ca *CA) WriteServingCert(dir string, hosts ...string) (certFile, keyFile string, err error) {
	certPEM, keyPEM, err := ca.ServingCert(hosts...)
	if err != nil {
		return "", "", err
	}
	f, err := os.CreateTemp(dir, "serving-*.crt")
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	if _, err := f.Write(certPEM); err != nil {
		return "", "", err
	}
	certFile = f.Name()
	keyFile = strings.TrimSuffix(certFile, ".crt") + ".key"
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// ServerTLSConfig is a tls.Config serving a new certificate from this CA
// (e.g. for httptest.Server.TLS).
func (ca *CA) ServerTLSConfig(hosts ...string) (*tls.Config, error) {
	certPEM, keyPEM, err := ca.ServingCert(hosts...)
	if err != nil {
		return nil, err
	}
	cert, err := keyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}

// ClientCert issues a client certificate; kube-apiserver takes the user
// name from CN and the groups from O.
func (ca *CA) ClientCert(user string, groups ...string) (certPEM, keyPEM []byte, err error) {
	return ca.pki.client(user, groups...)
}
