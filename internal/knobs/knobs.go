// Package knobs names settings only this module's tests change: keys of a
// built-in driver's configuration map that callers outside the module
// cannot name, for timings a test cannot wait for or must rule out, and
// the controller's own (under the pseudo network type Controller).
package knobs

import (
	"maps"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/store"
)

// ControllerStore (a store.Records) is the store the controller uses instead
// of the file under DataDir: a test runs a controller on store.Memory, and
// a second controller on the same Memory restores what the first left.
const ControllerStore = "opencnm.internal.controller.store"

// WithStore is the option giving a controller st as its store.
func WithStore(st store.Records) config.Option { return Set(ControllerStore, st) }

// Set is the option setting the controller knob key to v, keeping the
// knobs other options set (config.OptionDriverConfig would replace them).
func Set(key string, v any) config.Option {
	return func(c *config.Config) {
		m := maps.Clone(c.DriverCfg[Controller])
		if m == nil {
			m = map[string]any{}
		}
		m[key] = v
		c.DriverCfg[Controller] = m
	}
}

// NoBuiltinDrivers (a bool, under Controller) makes the controller start
// without its built-in network drivers (null, host, bridge, macvlan): a unit
// test registers the drivers it needs (the fake), and without the bridge
// and macvlan drivers the controller starts without root. The built-in IPAM drivers stay.
const NoBuiltinDrivers = "opencnm.internal.controller.no-builtin-drivers"

// BridgeRepairEvery (a time.Duration) replaces the bridge driver's period
// of firewall checks; a test that proves a repair was event-driven sets
// it beyond the test's length.
const BridgeRepairEvery = "opencnm.internal.bridge.repair-every"

// BridgeIPTablesLegacy (a bool) makes the bridge driver run
// iptables-legacy and its kin instead of what "iptables" resolves to, so
// a test proves the legacy path without changing PATH for the process.
const BridgeIPTablesLegacy = "opencnm.internal.bridge.iptables-legacy"

// BridgeNoEvents (a bool) makes the bridge driver behave as on a kernel
// without nftables events: it logs that and repairs by the fallback check.
const BridgeNoEvents = "opencnm.internal.bridge.no-events"

// Controller is the pseudo network type whose OptionDriverConfig map
// carries the controller's own knobs; no driver has this type.
const Controller = "opencnm.internal.controller"

// DNSCheckTicks (a <-chan time.Time, under Controller) drives the
// controller's periodic DNS redirect checks instead of its ticker: a test
// runs a check exactly when it sends, and never one it did not ask for.
const DNSCheckTicks = "opencnm.internal.controller.dns-check-ticks"

// GlobalKV (a globalstore.KV, under Controller) is the global store the
// controller uses instead of opening config KVProvider. The controller
// owns it and closes it at Stop, so each controller of a test gets its
// own client (memstore.Server.Client) of one memstore.Server, as hosts of
// one cluster each have their own client of one etcd.
const GlobalKV = "opencnm.internal.controller.global-kv"

// OverlayRepairEvery (a time.Duration) replaces the overlay driver's
// period of drift repair (each data plane reconciled with its network's
// peers); a test that proves the repair sets it short.
const OverlayRepairEvery = "opencnm.internal.overlay.repair-every"
