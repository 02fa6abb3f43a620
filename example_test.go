package libnetwork_test

import (
	"fmt"
	"log"
	"log/slog"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
)

// A runtime makes one controller for the host when it starts and keeps it
// until it exits. Networks and endpoints are durable: they live in the
// store under DataDir and come back when the next controller starts, so a
// runtime looks its networks up before it makes them. Namespace keys and
// the sandboxes' hosts and resolv.conf live under ExecRoot (a tmpfs, such
// as /run). A runtime restarting while containers run names their
// sandboxes with config.OptionActiveSandboxes, so they are kept as they
// are. New needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
func ExampleNew() {
	c, err := libnetwork.New(
		config.OptionDataDir("/var/lib/myruntime/network"),
		config.OptionExecRoot("/run/myruntime/network"),
		// The bridge driver's switches (dockerd's --ip-forward,
		// --iptables, --ip6tables); these are the defaults.
		config.OptionDriverConfig("bridge", map[string]any{
			netlabel.GenericData: options.Generic{"EnableIPForwarding": true, "EnableIPTables": true, "EnableIP6Tables": true},
		}),
		config.OptionLogger(slog.Default()),
	)
	if err != nil {
		log.Fatalf("starting the network controller: %v", err)
	}
	defer c.Stop()

	// What the previous run left that could not be brought back stays
	// recorded and is tried again at the next start; the rest is usable.
	if err := c.RestoreError(); err != nil {
		log.Printf("not all networks were restored: %v", err)
	}
	if _, err := c.NetworkByName("web"); err != nil {
		fmt.Println("no network web yet:", err)
	}
	fmt.Println("drivers:", c.BuiltinDrivers())
}
