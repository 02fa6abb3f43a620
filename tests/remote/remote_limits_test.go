package remote

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

// A network plugin answering CreateNetwork with 200 MB, or without end,
// fails NewNetwork as Internal, costs the controller a bounded amount of
// memory, and leaves nothing: no network, and its pool is free again.
func TestRemotePluginFloodsReply(t *testing.T) {
	// Not parallel: the memory bound is the whole process's.
	// A generous bound: the create must fail on size, not time.
	c, _, dir := testrig.NewPluginController(t, 10*time.Second)
	for name, flood := range map[string]http.HandlerFunc{
		"flood":   plugintest.Flood(`{"Err":"`, 200<<20),
		"endless": plugintest.Flood(`{"Err":"`, -1),
	} {
		t.Run(name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, `{"Implements": ["NetworkDriver"]}`)
			})
			mux.HandleFunc("/NetworkDriver.GetCapabilities", func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, `{"Scope": "local"}`)
			})
			mux.HandleFunc("/NetworkDriver.CreateNetwork", flood)
			testrig.Publish(t, dir, name, testrig.ViaSocket, plugintest.HTTP{Handler: mux})
			pool := testrig.IPAMOpt("10.94.0.0/24", "")
			var err error
			g := testutil.MeasureGrowth(t, func() { _, err = c.NewNetwork(name, "n", "", pool) })
			if !types.IsInternal(err) {
				t.Fatalf("want Internal, got %v", err)
			}
			if g.PeakRSS > 64<<20 || g.Alloc > 64<<20 {
				t.Fatalf("NewNetwork grew the process: peak RSS +%d MiB, %d MiB allocated", g.PeakRSS>>20, g.Alloc>>20)
			}
			if _, err := c.NetworkByName("n"); err == nil {
				t.Fatal("the network exists")
			}
			n, err := c.NewNetwork("bridge", "n", "", pool)
			if err != nil {
				t.Fatalf("the name or pool is still taken: %v", err)
			}
			if err := n.Delete(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
