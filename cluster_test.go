package libnetwork_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/types"
)

// Without the provider's import, asking for it fails New with NotFound
// naming the package to import.
func TestKVProviderWithoutImport(t *testing.T) {
	_, err := libnetwork.New(config.OptionDataDir(t.TempDir()), config.OptionExecRoot(t.TempDir()),
		knobs.Set(knobs.NoBuiltinDrivers, true),
		config.OptionKVProvider("etcd"), config.OptionKVProviderURL("unix:///nonexistent"))
	var nf types.NotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "github.com/opencnm/libnetwork/store/etcd") {
		t.Fatalf("New with an unregistered etcd provider: %v; want NotFound naming the import", err)
	}
}
