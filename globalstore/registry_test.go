package globalstore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/etcdproc"
	"github.com/opencnm/libnetwork/types"
)

func TestOpenUnregisteredNamesTheImport(t *testing.T) {
	_, err := globalstore.Open("etcd", globalstore.Config{Endpoints: []string{"unix:///nowhere"}})
	if !types.IsNotFound(err) || !strings.Contains(err.Error(), `import _ "github.com/opencnm/libnetwork/store/etcd"`) {
		t.Fatalf("want NotFound naming the import, got %v", err)
	}
}

// registered counts TestRegisterAndOpen's runs: the provider table lives
// as long as the process, so each run (-count) registers a name of its own.
var registered atomic.Int32

func TestRegisterAndOpen(t *testing.T) {
	srv := memstore.New()
	name := fmt.Sprintf("memtest%d", registered.Add(1))
	globalstore.Register(name, func(globalstore.Config) (globalstore.KV, error) { return srv.Client(), nil })
	if !slices.Contains(globalstore.Providers(), name) {
		t.Fatalf("Providers() = %v, want %s in it", globalstore.Providers(), name)
	}
	kv, err := globalstore.Open(name, globalstore.Config{Endpoints: []string{"x"}})
	if err != nil || kv == nil {
		t.Fatalf("Open: %v, %v", kv, err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a second Register of one name must panic")
		}
	}()
	globalstore.Register(name, nil)
}

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	certs, err := etcdproc.WriteCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := globalstore.ParseConfig(" unix:///a.sock, https://10.0.0.1:2379 ,", map[string]string{
		globalstore.OptCACertFile: certs.CA, globalstore.OptCertFile: certs.ClientCert, globalstore.OptKeyFile: certs.ClientKey})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Endpoints, []string{"unix:///a.sock", "https://10.0.0.1:2379"}) {
		t.Fatalf("endpoints %v", c.Endpoints)
	}
	if c.TLS == nil || c.TLS.RootCAs == nil || len(c.TLS.Certificates) != 1 {
		t.Fatalf("TLS options not applied: %+v", c.TLS)
	}
	c, err = globalstore.ParseConfig("unix:///a.sock", map[string]string{globalstore.OptCACertFile: certs.CA})
	if err != nil || c.TLS == nil || c.TLS.RootCAs == nil || len(c.TLS.Certificates) != 0 {
		t.Fatalf("CA only: %+v, %v", c.TLS, err)
	}
	notPEM := filepath.Join(dir, "junk")
	if err := os.WriteFile(notPEM, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		url  string
		opts map[string]string
	}{
		"no endpoints":    {" , ", nil},
		"unknown option":  {"unix:///a", map[string]string{"kv.password": "x"}},
		"cert no key":     {"unix:///a", map[string]string{globalstore.OptCertFile: certs.ClientCert}},
		"missing CA file": {"unix:///a", map[string]string{globalstore.OptCACertFile: filepath.Join(dir, "none")}},
		"CA not PEM":      {"unix:///a", map[string]string{globalstore.OptCACertFile: notPEM}},
		"key mismatch":    {"unix:///a", map[string]string{globalstore.OptCertFile: certs.ClientCert, globalstore.OptKeyFile: certs.ServerKey}},
	} {
		if _, err := globalstore.ParseConfig(tc.url, tc.opts); !types.IsBadRequest(err) {
			t.Errorf("%s: want BadRequest, got %v", name, err)
		}
	}
}
