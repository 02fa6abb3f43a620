package plugins_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/plugins"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

// maxGrowth is the generous bound on what one hostile reply may cost the
// process: the reply cap is 1 MiB, and an unbounded read of the 200 MB
// reply costs hundreds of MiB.
const maxGrowth = 64 << 20

const floodSize = 200 << 20

// TestHostileReplies: a plugin answering a call, or the handshake, with a
// 200 MB body or one without end fails the call as Internal and costs the
// process a bounded amount of memory; a reply still arriving at the
// deadline is a Timeout.
func TestHostileReplies(t *testing.T) {
	h := sdk.NewHandler(netManifest)
	// One JSON string growing without end: a decoder that buffers the
	// value keeps all of it.
	h.HandleFunc("/NetworkDriver.Flood", plugintest.Flood(`{"Err":"`, floodSize))
	h.HandleFunc("/NetworkDriver.Endless", plugintest.Flood(`{"Err":"`, -1))
	h.HandleFunc("/NetworkDriver.FloodStatus", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		plugintest.Flood("", floodSize)(&statusDropper{w}, r)
	})
	h.HandleFunc("/NetworkDriver.EndlessHeader", endlessHeader)
	// A generous bound for the calls that must fail on size, not time.
	c, _ := get(t, h, 10*time.Second)

	for _, method := range []string{"NetworkDriver.Flood", "NetworkDriver.Endless"} {
		t.Run(method, func(t *testing.T) {
			var err error
			g := testutil.MeasureGrowth(t, func() {
				var resp struct{ Err string }
				err = c.Call(method, nil, &resp)
			})
			require.Error(t, err)
			assert.True(t, types.IsInternal(err), "an oversized reply is Internal: %v", err)
			assert.Contains(t, err.Error(), "larger than")
			assert.Less(t, g.PeakRSS, uint64(maxGrowth), "peak RSS growth")
			assert.Less(t, g.Alloc, uint64(maxGrowth), "heap allocated during the call")
			t.Logf("%s: peak RSS +%d KiB, allocated %d KiB", method, g.PeakRSS>>10, g.Alloc>>10)
		})
	}
	t.Run("endless header", func(t *testing.T) {
		var err error
		g := testutil.MeasureGrowth(t, func() { err = c.Call("NetworkDriver.EndlessHeader", nil, nil) })
		assert.True(t, types.IsInternal(err), "got %v", err)
		t.Logf("endless header: allocated %d KiB", g.Alloc>>10)
		// Without a cap of its own net/http takes 10 MiB of headers.
		assert.Less(t, g.Alloc, uint64(4<<20), "heap allocated during the call")
	})
	t.Run("failure status", func(t *testing.T) {
		var err error
		g := testutil.MeasureGrowth(t, func() { err = c.Call("NetworkDriver.FloodStatus", nil, nil) })
		assert.True(t, types.IsInternal(err), "got %v", err)
		assert.Less(t, g.Alloc, uint64(maxGrowth), "heap allocated during the call")
	})
	t.Run("still arriving at the deadline", func(t *testing.T) {
		h := sdk.NewHandler(netManifest)
		h.HandleFunc("/NetworkDriver.Trickle", plugintest.Trickle(`{"Err":"`, 20*time.Millisecond))
		c, _ := get(t, h, time.Second)
		var resp struct{ Err string }
		err := c.Call("NetworkDriver.Trickle", nil, &resp)
		assert.True(t, types.IsTimeout(err), "a reply not complete in time is a Timeout: %v", err)
	})
}

// endlessHeader answers with a status line and one header line that never
// ends, written on the raw connection.
func endlessHeader(w http.ResponseWriter, _ *http.Request) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if _, err := buf.WriteString("HTTP/1.1 200 OK\r\nX-Flood: "); err != nil {
		return
	}
	chunk := []byte(strings.Repeat("a", 64<<10))
	for {
		if _, err := buf.Write(chunk); err != nil {
			return
		}
		if err := buf.Flush(); err != nil {
			return
		}
	}
}

// statusDropper lets Flood write a body under a status already sent.
type statusDropper struct{ http.ResponseWriter }

func (statusDropper) WriteHeader(int) {}

// TestHostileActivate: the handshake goes through the same bounded read.
func TestHostileActivate(t *testing.T) {
	for name, h := range map[string]http.Handler{
		"200 MB":  plugintest.Flood(`{"Implements":["`, floodSize),
		"endless": plugintest.Flood(`{"Implements":["`, -1),
	} {
		t.Run(name, func(t *testing.T) {
			dir := plugintest.Dir(t)
			plugintest.ServeUnix(t, filepath.Join(dir, "p.sock"), plugintest.HTTP{Handler: h})
			reg := plugins.NewRegistry([]string{dir}, 10*time.Second)
			t.Cleanup(func() { reg.Close() })
			var err error
			g := testutil.MeasureGrowth(t, func() { _, err = reg.Get("p", "NetworkDriver") })
			assert.True(t, types.IsInternal(err), "got %v", err)
			assert.Less(t, g.PeakRSS, uint64(maxGrowth), "peak RSS growth")
			assert.Less(t, g.Alloc, uint64(maxGrowth), "heap allocated during the handshake")
		})
	}
	t.Run("still arriving at the deadline", func(t *testing.T) {
		dir := plugintest.Dir(t)
		plugintest.ServeUnix(t, filepath.Join(dir, "p.sock"), plugintest.HTTP{Handler: plugintest.Trickle(`{"Implements":["`, 20*time.Millisecond)})
		reg := plugins.NewRegistry([]string{dir}, 300*time.Millisecond)
		t.Cleanup(func() { reg.Close() })
		_, err := reg.Get("p", "NetworkDriver")
		assert.True(t, types.IsTimeout(err), "got %v", err)
	})
}

// A spec file that is not a regular file (a FIFO would block discovery
// until written to) or is far larger than any spec is BadRequest at once,
// reading at most a bounded amount of it.
func TestHostileSpecFiles(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.spec"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := plugins.Discover([]string{dir}, "fifo")
	assert.True(t, types.IsBadRequest(err), "FIFO spec: got %v", err)

	f, err := os.Create(filepath.Join(dir, "huge.json"))
	require.NoError(t, err)
	require.NoError(t, f.Truncate(floodSize)) // sparse: no disk used
	require.NoError(t, f.Close())
	g := testutil.MeasureGrowth(t, func() { _, err = plugins.Discover([]string{dir}, "huge") })
	assert.True(t, types.IsBadRequest(err), "200 MB spec: got %v", err)
	assert.Less(t, g.Alloc, uint64(maxGrowth), "heap allocated reading the spec")
}
