package pgtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Option configures a cluster started by NewDedicated.
type Option func(*options)

type options struct {
	certPEM, keyPEM []byte // server certificate (chain) and key; nil: no TLS
	hba             string // TCP rules of pg_hba.conf; "": initdb's (trust from loopback)
	hbaSet          bool
}

// WithTLS turns on TLS (ssl=on) with the given server certificate, or chain,
// and private key in PEM. pgtest installs them the way postgres insists on:
// owned by the server's OS user, the key readable by it alone.
func WithTLS(certPEM, keyPEM []byte) Option {
	return func(o *options) { o.certPEM, o.keyPEM = certPEM, keyPEM }
}

// WithHBA replaces the TCP rules of pg_hba.conf with lines, for example
// "hostssl all all 127.0.0.1/32 trust" to refuse connections without TLS.
// A "local all all trust" rule always comes first: pgtest administers the
// cluster (CREATE DATABASE, readiness) through its Unix socket.
func WithHBA(lines string) Option {
	return func(o *options) { o.hba, o.hbaSet = lines, true }
}

// configure applies opts to a freshly initialised data directory. The
// settings go into the configuration files, so they survive Stop and Start.
func (s *Server) configure(opts options) error {
	data := dataDir(s.root)
	if opts.hbaSet {
		hba := "# written by pgtest.WithHBA\nlocal all all trust\n" + opts.hba + "\n"
		if err := s.writeOwned(filepath.Join(data, "pg_hba.conf"), []byte(hba)); err != nil {
			return err
		}
	}
	if opts.certPEM == nil && opts.keyPEM == nil {
		return nil
	}
	if len(opts.certPEM) == 0 || len(opts.keyPEM) == 0 {
		return fmt.Errorf("WithTLS needs both a certificate and a key")
	}
	cert, key := filepath.Join(data, "server.crt"), filepath.Join(data, "server.key")
	if err := s.writeOwned(cert, opts.certPEM); err != nil {
		return err
	}
	if err := s.writeOwned(key, opts.keyPEM); err != nil {
		return err
	}
	conf := fmt.Sprintf("\n# written by pgtest.WithTLS\nssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\n",
		strings.ReplaceAll(cert, "'", "''"), strings.ReplaceAll(key, "'", "''"))
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeOwned writes a file only the server's OS user may read: postgres
// refuses a private key that others can read or that someone else owns.
func (s *Server) writeOwned(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	// WriteFile keeps the mode of an existing file (initdb's pg_hba.conf).
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	if s.cred != nil {
		return os.Chown(path, int(s.cred.Uid), int(s.cred.Gid))
	}
	return nil
}

// CA is a throwaway certificate authority for tests of TLS to the
// database: an ECDSA P-256 key and a self-signed certificate valid for a day.
type CA struct {
	// CertPEM is the CA certificate, what a client names in sslrootcert.
	CertPEM []byte
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
}

// NewCA creates a certificate authority for this test.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("pgtest: CA key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "pgtest CA " + t.Name()},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew between test and server
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("pgtest: CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("pgtest: CA certificate: %v", err)
	}
	return &CA{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert: cert, key: key}
}

// Issue returns a server certificate signed by the CA for hosts (IP
// addresses or DNS names; the first is also the common name) and its key,
// both in PEM, ready for WithTLS.
func (ca *CA) Issue(t testing.TB, hosts ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	if len(hosts) == 0 {
		t.Fatal("pgtest: Issue needs at least one host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("pgtest: server key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("pgtest: server certificate: %v", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("pgtest: server key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
}

// CertFile writes the CA certificate to a file removed after the test and
// returns its path, for a connection string's sslrootcert.
func (ca *CA) CertFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.CertPEM, 0o644); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return path
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("pgtest: serial number: %v", err)
	}
	return n
}
