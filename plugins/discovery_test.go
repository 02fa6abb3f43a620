package plugins_test

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opencnm/libnetwork/plugins"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

const netManifest = `{"Implements": ["NetworkDriver"]}`

// echoPlugin is a go-plugins-helpers plugin implementing NetworkDriver with
// one extra method, NetworkDriver.Echo, that answers with its own identity
// and what it received, so a test can tell which server a call reached.
func echoPlugin(t *testing.T, id string) (sdk.Handler, *atomic.Int32) {
	t.Helper()
	h := sdk.NewHandler(netManifest)
	var calls atomic.Int32
	h.HandleFunc("/NetworkDriver.Echo", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req map[string]any
		if err := sdk.DecodeRequest(w, r, &req); err != nil {
			return
		}
		sdk.EncodeResponse(w, map[string]any{
			"ID": id, "Got": req, "Accept": r.Header.Get("Accept"), "ContentType": r.Header.Get("Content-Type"),
		}, false)
	})
	return h, &calls
}

type echoReply struct {
	ID          string
	Got         map[string]any
	Accept      string
	ContentType string
}

func TestDiscoverAllLayouts(t *testing.T) {
	sockDir := plugintest.Dir(t) // like /run/docker/plugins
	specDir := plugintest.Dir(t) // like /etc/docker/plugins
	elsewhere := plugintest.Dir(t)

	serveUnix := func(name, path string) {
		h, _ := echoPlugin(t, name)
		plugintest.ServeUnix(t, path, h)
	}
	serveTCP := func(name string) string {
		h, _ := echoPlugin(t, name)
		return plugintest.ServeTCP(t, h).Addr
	}

	serveUnix("flat-sock", filepath.Join(sockDir, "flat-sock.sock"))
	serveUnix("nested-sock", filepath.Join(sockDir, "nested-sock", "nested-sock.sock"))
	plugintest.WriteSpec(t, filepath.Join(specDir, "flat-spec.spec"), serveTCP("flat-spec"))
	// A spec may point at a unix socket anywhere.
	otherSock := filepath.Join(elsewhere, "x.sock")
	serveUnix("nested-spec", otherSock)
	plugintest.WriteSpec(t, filepath.Join(specDir, "nested-spec", "nested-spec.spec"), "unix://"+otherSock)
	plugintest.WriteJSONSpec(t, filepath.Join(specDir, "flat-json.json"), "flat-json", serveTCP("flat-json"), nil)
	plugintest.WriteJSONSpec(t, filepath.Join(specDir, "nested-json", "nested-json.json"), "nested-json", serveTCP("nested-json"), nil)

	reg := plugins.NewRegistry([]string{sockDir, specDir}, 5*time.Second)
	t.Cleanup(func() { reg.Close() })

	for _, name := range []string{"flat-sock", "nested-sock", "flat-spec", "nested-spec", "flat-json", "nested-json"} {
		t.Run(name, func(t *testing.T) {
			c, err := reg.Get(name, "NetworkDriver")
			require.NoError(t, err)
			assert.Equal(t, name, c.Name())
			assert.True(t, c.Implements("NetworkDriver"))

			var got echoReply
			require.NoError(t, c.Call("NetworkDriver.Echo", map[string]string{"Hello": name}, &got))
			assert.Equal(t, name, got.ID, "call reached the wrong server")
			assert.Equal(t, map[string]any{"Hello": name}, got.Got)
			assert.Equal(t, plugins.MediaType, got.Accept)
			assert.Equal(t, plugins.MediaType, got.ContentType)
		})
	}
}

func TestDiscoverOrderAndSpecs(t *testing.T) {
	dir := plugintest.Dir(t)
	sock := filepath.Join(dir, "p.sock")
	h, _ := echoPlugin(t, "p")
	plugintest.ServeUnix(t, sock, h)
	plugintest.WriteSpec(t, filepath.Join(dir, "p.spec"), "tcp://127.0.0.1:1")

	spec, err := plugins.Discover([]string{dir}, "p")
	require.NoError(t, err)
	assert.Equal(t, "unix://"+sock, spec.Addr, "a socket wins over a spec file in the same directory")

	plugintest.WriteJSONSpec(t, filepath.Join(dir, "j.json"), "other", "https://127.0.0.1:9", nil)
	spec, err = plugins.Discover([]string{dir}, "j")
	require.NoError(t, err)
	assert.Equal(t, "j", spec.Name, "the file name is the plugin name")
	require.NotNil(t, spec.TLSConfig)
	assert.True(t, spec.TLSConfig.InsecureSkipVerify, "json spec without TLSConfig is insecure, as in Docker")

	// A regular file with a socket's name is not a plugin.
	plugintest.WriteFile(t, filepath.Join(dir, "notsock.sock"), []byte("x"))
	_, err = plugins.Discover([]string{dir}, "notsock")
	assert.True(t, types.IsNotFound(err), "got %v", err)

	for name, content := range map[string]string{
		"empty":  "",
		"scheme": "ftp://127.0.0.1:21",
		"nohost": "tcp://",
		"nopath": "unix://",
	} {
		plugintest.WriteFile(t, filepath.Join(dir, name+".spec"), []byte(content))
		_, err := plugins.Discover([]string{dir}, name)
		assert.True(t, types.IsBadRequest(err), "%s: got %v", name, err)
	}
	plugintest.WriteFile(t, filepath.Join(dir, "badjson.json"), []byte("{"))
	_, err = plugins.Discover([]string{dir}, "badjson")
	assert.True(t, types.IsBadRequest(err), "got %v", err)

	for _, name := range []string{"", " ", "..", "a/b", "../p"} {
		_, err := plugins.Discover([]string{dir}, name)
		assert.True(t, types.IsBadRequest(err), "%q: got %v", name, err)
	}
}

func TestMissingPluginFailsFast(t *testing.T) {
	reg := plugins.NewRegistry([]string{plugintest.Dir(t), plugintest.Dir(t)}, 10*time.Second)
	t.Cleanup(func() { reg.Close() })
	start := time.Now()
	_, err := reg.Get("framerelay", "NetworkDriver")
	require.Error(t, err)
	assert.True(t, types.IsNotFound(err), "got %v", err)
	assert.Contains(t, err.Error(), "framerelay")
	assert.Less(t, time.Since(start), time.Second, "a missing plugin must not be waited for")
}

func TestSilentSocketTimesOut(t *testing.T) {
	const bound = 300 * time.Millisecond

	t.Run("nobody listening", func(t *testing.T) {
		// A socket file left behind by a plugin that is not running.
		dir := plugintest.Dir(t)
		l, err := net.Listen("unix", filepath.Join(dir, "stale.sock"))
		require.NoError(t, err)
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		require.NoError(t, l.Close())

		reg := plugins.NewRegistry([]string{dir}, bound)
		t.Cleanup(func() { reg.Close() })
		start := time.Now()
		_, err = reg.Get("stale", "NetworkDriver")
		elapsed := time.Since(start)
		require.Error(t, err)
		assert.True(t, types.IsTimeout(err), "got %v", err)
		assert.GreaterOrEqual(t, elapsed, bound, "the plugin must be retried for the whole bound")
		assert.Less(t, elapsed, bound+2*time.Second)
	})

	t.Run("accepts but never answers", func(t *testing.T) {
		dir := plugintest.Dir(t)
		l, err := net.Listen("unix", filepath.Join(dir, "mute.sock"))
		require.NoError(t, err)
		accepted := make(chan net.Conn, 4)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}
		}()
		t.Cleanup(func() {
			l.Close()
			for c := range accepted {
				c.Close()
			}
		})

		reg := plugins.NewRegistry([]string{dir}, bound)
		t.Cleanup(func() { reg.Close() })
		start := time.Now()
		_, err = reg.Get("mute", "NetworkDriver")
		require.Error(t, err)
		assert.True(t, types.IsTimeout(err), "got %v", err)
		assert.Less(t, time.Since(start), bound+2*time.Second)
	})

	t.Run("starts late", func(t *testing.T) {
		dir := plugintest.Dir(t)
		path := filepath.Join(dir, "late.sock")
		l, err := net.Listen("unix", path)
		require.NoError(t, err)
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		require.NoError(t, l.Close())

		h, _ := echoPlugin(t, "late")
		started := make(chan error, 1)
		served := make(chan struct{})
		var late net.Listener
		go func() {
			time.Sleep(150 * time.Millisecond)
			os.Remove(path)
			var err error
			late, err = net.Listen("unix", path)
			started <- err
			if err == nil {
				h.Serve(late)
			}
			close(served)
		}()
		reg := plugins.NewRegistry([]string{dir}, 5*time.Second)
		t.Cleanup(func() { reg.Close() })
		c, err := reg.Get("late", "NetworkDriver")
		require.NoError(t, <-started)
		late.Close()
		<-served
		require.NoError(t, err)
		assert.Equal(t, "late", c.Name())
	})
}

func TestActivation(t *testing.T) {
	dir := plugintest.Dir(t)
	var activations atomic.Int32
	// A hand-written plugin, so the test can count and slow handshakes.
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		activations.Add(1)
		time.Sleep(50 * time.Millisecond) // let concurrent Gets pile up
		w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
		json.NewEncoder(w).Encode(map[string][]string{"Implements": {"IpamDriver"}})
	})
	plugintest.ServeUnix(t, filepath.Join(dir, "ipam.sock"), plugintest.HTTP{Handler: mux})

	reg := plugins.NewRegistry([]string{dir}, 5*time.Second)
	t.Cleanup(func() { reg.Close() })

	errs := make(chan error, 8)
	for range 8 {
		go func() { _, err := reg.Get("ipam", "IpamDriver"); errs <- err }()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
	assert.EqualValues(t, 1, activations.Load(), "concurrent Gets must share one handshake")

	_, err := reg.Get("ipam", "NetworkDriver")
	require.Error(t, err)
	assert.True(t, types.IsNotImplemented(err), "got %v", err)
	assert.Contains(t, err.Error(), "does not implement NetworkDriver")
	assert.EqualValues(t, 1, activations.Load(), "an activated plugin is cached")

	require.NoError(t, reg.Close())
	_, err = reg.Get("ipam", "IpamDriver")
	assert.Error(t, err, "Get after Close")
}

func TestActivationMismatchWithHelper(t *testing.T) {
	// The upstream scenario: a plugin whose handshake lists only an unknown interface.
	dir := plugintest.Dir(t)
	plugintest.ServeUnix(t, filepath.Join(dir, "invalid.sock"), sdk.NewHandler(`{"Implements": ["InvalidDriver"]}`))
	reg := plugins.NewRegistry([]string{dir}, 5*time.Second)
	t.Cleanup(func() { reg.Close() })
	_, err := reg.Get("invalid", "NetworkDriver")
	require.Error(t, err)
	assert.True(t, types.IsNotImplemented(err), "got %v", err)
	assert.True(t, strings.Contains(err.Error(), "invalid"), "error names the plugin: %v", err)
}
