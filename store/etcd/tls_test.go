package etcd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/etcdproc"
	"github.com/opencnm/libnetwork/types"
)

// The kv.* options reach the connection: with the CA and a client
// certificate the store answers; without the certificate, or without TLS,
// a store that requires client certificates refuses, as a classified error.
func TestTLSOptions(t *testing.T) {
	t.Parallel()
	certs, err := etcdproc.WriteCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := etcdproc.StartT(t, etcdproc.Options{TLS: &certs})
	claim := func(url string, opts map[string]string) error {
		cfg, err := globalstore.ParseConfig(url, opts)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DialTimeout = time.Second
		kv, err := globalstore.Open("etcd", cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer kv.Close()
		st := globalstore.New(kv, globalstore.Options{Timeout: 3 * time.Second})
		return st.Claim(context.Background(), "n1", globalstore.NoLease, globalstore.NetworkName("blue"))
	}
	full := map[string]string{globalstore.OptCACertFile: certs.CA,
		globalstore.OptCertFile: certs.ClientCert, globalstore.OptKeyFile: certs.ClientKey}
	if err := claim(m.Endpoint(), full); err != nil {
		t.Fatalf("with CA and client certificate: %v", err)
	}
	if err := claim(m.Endpoint(), map[string]string{globalstore.OptCACertFile: certs.CA}); err == nil || !types.IsNoService(err) {
		t.Fatalf("without a client certificate: want a NoService refusal, got %v", err)
	}
	plain := strings.Replace(m.Endpoint(), "unixs://", "unix://", 1)
	if err := claim(plain, nil); err == nil || !types.IsNoService(err) {
		t.Fatalf("without TLS: want a NoService refusal, got %v", err)
	}
}
