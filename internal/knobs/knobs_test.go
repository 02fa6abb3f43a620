package knobs

import (
	"testing"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/store"
)

// Controller knobs set by separate options all arrive.
func TestSetKeepsOtherKnobs(t *testing.T) {
	st := store.NewMemory()
	cfg := config.New(Set(DNSCheckTicks, "ticks"), WithStore(st))
	m := cfg.DriverCfg[Controller]
	if m[DNSCheckTicks] != "ticks" || m[ControllerStore] != st {
		t.Fatalf("controller knobs %v: want both the ticks and the store", m)
	}
}
