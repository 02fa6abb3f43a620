package testrig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencnm/libnetwork"
)

func EpIP(ep *libnetwork.Endpoint) string { return ep.Info().Iface().Address().IP.String() }

func WriteTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ReadFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
