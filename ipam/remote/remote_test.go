package remote_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/ipam/remote"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/plugins"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

// fakeIPAM is an IPAM plugin written with go-plugins-helpers. It hands out
// one /24 per pool request, reserves .1 for gateway requests and gives
// other addresses from .10 up.
type fakeIPAM struct {
	mu       sync.Mutex
	pools    map[string]netip.Prefix        // pool ID -> pool
	addrs    map[string]map[netip.Addr]bool // pool ID -> addresses in use
	next     map[string]netip.Addr          // pool ID -> next address to give
	requests []*ipam.RequestAddressRequest  // every address request, in order
	poolReqs []*ipam.RequestPoolRequest     // every pool request, in order
	hook     func()                         // runs inside RequestAddress
}

func newFakeIPAM() *fakeIPAM {
	return &fakeIPAM{pools: map[string]netip.Prefix{}, addrs: map[string]map[netip.Addr]bool{}, next: map[string]netip.Addr{}}
}

func (f *fakeIPAM) GetCapabilities() (*ipam.CapabilitiesResponse, error) {
	return &ipam.CapabilitiesResponse{RequiresMACAddress: true}, nil
}

func (f *fakeIPAM) GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error) {
	return &ipam.AddressSpacesResponse{LocalDefaultAddressSpace: "fakeLocal", GlobalDefaultAddressSpace: "fakeGlobal"}, nil
}

func (f *fakeIPAM) RequestPool(r *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.poolReqs = append(f.poolReqs, r)
	if r.V6 {
		return nil, errors.New("no IPv6 here")
	}
	pool := netip.MustParsePrefix(fmt.Sprintf("10.20.%d.0/24", len(f.pools)))
	if r.Pool != "" {
		p, err := netip.ParsePrefix(r.Pool)
		if err != nil {
			return nil, err
		}
		pool = p
	}
	id := r.AddressSpace + "/" + pool.String()
	if _, ok := f.pools[id]; ok {
		return nil, fmt.Errorf("pool %s overlaps", pool)
	}
	f.pools[id] = pool
	f.addrs[id] = map[netip.Addr]bool{}
	f.next[id] = nth(pool, 10)
	gw := netip.PrefixFrom(pool.Addr().Next(), pool.Bits())
	return &ipam.RequestPoolResponse{PoolID: id, Pool: pool.String(), Data: map[string]string{netlabel.Gateway: gw.String()}}, nil
}

// nth returns the n-th address of p (p's address is the 0th).
func nth(p netip.Prefix, n int) netip.Addr {
	a := p.Addr()
	for range n {
		a = a.Next()
	}
	return a
}

func (f *fakeIPAM) ReleasePool(r *ipam.ReleasePoolRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pools[r.PoolID]; !ok {
		return fmt.Errorf("pool %s not found", r.PoolID)
	}
	delete(f.pools, r.PoolID)
	delete(f.addrs, r.PoolID)
	return nil
}

func (f *fakeIPAM) RequestAddress(r *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r)
	pool, ok := f.pools[r.PoolID]
	if !ok {
		return nil, fmt.Errorf("pool %s not found", r.PoolID)
	}
	var a netip.Addr
	switch {
	case r.Address != "":
		var err error
		if a, err = netip.ParseAddr(r.Address); err != nil {
			return nil, err
		}
	case r.Options[ipamapi.RequestAddressType] == netlabel.Gateway:
		a = pool.Addr().Next()
	default:
		a = f.next[r.PoolID]
		f.next[r.PoolID] = a.Next()
	}
	if f.addrs[r.PoolID][a] {
		return nil, fmt.Errorf("address %s already in use", a)
	}
	f.addrs[r.PoolID][a] = true
	return &ipam.RequestAddressResponse{Address: netip.PrefixFrom(a, pool.Bits()).String(), Data: map[string]string{"by": "fake"}}, nil
}

func (f *fakeIPAM) ReleaseAddress(r *ipam.ReleaseAddressRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := netip.ParseAddr(r.Address)
	if err != nil {
		return err
	}
	if !f.addrs[r.PoolID][a] {
		return fmt.Errorf("address %s not allocated", a)
	}
	delete(f.addrs[r.PoolID], a)
	return nil
}

// serve serves h as IPAM plugin "fakeipam" over a socket or, with tcp, a
// spec file, and returns the activated client.
func serve(t *testing.T, h plugintest.Handler, tcp bool, timeout time.Duration) (*plugins.Client, *plugintest.Server) {
	t.Helper()
	dir := plugintest.Dir(t)
	var srv *plugintest.Server
	if tcp {
		srv = plugintest.ServeTCP(t, h)
		plugintest.WriteSpec(t, filepath.Join(dir, "fakeipam", "fakeipam.spec"), srv.Addr)
	} else {
		srv = plugintest.ServeUnix(t, filepath.Join(dir, "fakeipam", "fakeipam.sock"), h)
	}
	reg := plugins.NewRegistry([]string{dir}, timeout)
	t.Cleanup(func() { reg.Close() })
	c, err := reg.Get("fakeipam", ipamapi.PluginEndpointType)
	require.NoError(t, err)
	return c, srv
}

func TestIPAMLifecycle(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		t.Run(fmt.Sprintf("tcp=%t", tcp), func(t *testing.T) {
			f := newFakeIPAM()
			c, _ := serve(t, ipam.NewHandler(f), tcp, 5*time.Second)
			a, err := remote.New(c)
			require.NoError(t, err)
			assert.Equal(t, ipamapi.Capability{RequiresMACAddress: true}, a.Capabilities())

			local, global, err := a.GetDefaultAddressSpaces()
			require.NoError(t, err)
			assert.Equal(t, "fakeLocal", local)
			assert.Equal(t, "fakeGlobal", global)

			pool, err := a.RequestPool(ipamapi.PoolRequest{
				AddressSpace: local,
				Options:      map[string]string{"opt": "1"},
				Exclude:      []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}, // not sent
			})
			require.NoError(t, err)
			assert.Equal(t, "fakeLocal/10.20.0.0/24", pool.PoolID)
			assert.Equal(t, netip.MustParsePrefix("10.20.0.0/24"), pool.Pool)
			assert.Equal(t, "10.20.0.1/24", pool.Meta[netlabel.Gateway])
			f.mu.Lock()
			assert.Equal(t, ipam.RequestPoolRequest{AddressSpace: "fakeLocal", Options: map[string]string{"opt": "1"}}, *f.poolReqs[0])
			f.mu.Unlock()

			explicit, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, Pool: "192.168.7.0/24", SubPool: "192.168.7.128/25"})
			require.NoError(t, err)
			assert.Equal(t, "192.168.7.0/24", explicit.Pool.String())
			f.mu.Lock()
			assert.Equal(t, "192.168.7.128/25", f.poolReqs[1].SubPool)
			f.mu.Unlock()

			gw, data, err := a.RequestAddress(pool.PoolID, netip.Addr{}, map[string]string{ipamapi.RequestAddressType: netlabel.Gateway})
			require.NoError(t, err)
			assert.Equal(t, "10.20.0.1/24", gw.String())
			assert.Equal(t, map[string]string{"by": "fake"}, data)

			mac := map[string]string{netlabel.MacAddress: "02:42:0a:14:00:0a"}
			ep, _, err := a.RequestAddress(pool.PoolID, netip.Addr{}, mac)
			require.NoError(t, err)
			assert.Equal(t, "10.20.0.10/24", ep.String())

			pref, _, err := a.RequestAddress(pool.PoolID, netip.MustParseAddr("10.20.0.77"), nil)
			require.NoError(t, err)
			assert.Equal(t, "10.20.0.77/24", pref.String())

			f.mu.Lock()
			require.Len(t, f.requests, 3)
			assert.Equal(t, netlabel.Gateway, f.requests[0].Options[ipamapi.RequestAddressType], "gateway request option reaches the plugin")
			assert.Empty(t, f.requests[0].Address)
			assert.Equal(t, "02:42:0a:14:00:0a", f.requests[1].Options[netlabel.MacAddress])
			assert.Equal(t, "10.20.0.77", f.requests[2].Address, "preferred address sent as a plain IP")
			f.mu.Unlock()

			// The plugin's errors come back with its message.
			_, _, err = a.RequestAddress(pool.PoolID, netip.MustParseAddr("10.20.0.77"), nil)
			assert.EqualError(t, err, "remote: address 10.20.0.77 already in use")
			assert.True(t, types.IsInternal(err))
			_, err = a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, V6: true})
			assert.EqualError(t, err, "remote: no IPv6 here")

			require.NoError(t, a.ReleaseAddress(pool.PoolID, ep.Addr()))
			require.NoError(t, a.ReleaseAddress(pool.PoolID, gw.Addr()))
			require.NoError(t, a.ReleaseAddress(pool.PoolID, pref.Addr()))
			err = a.ReleaseAddress(pool.PoolID, pref.Addr())
			assert.EqualError(t, err, "remote: address 10.20.0.77 not allocated")
			assert.True(t, types.IsBadRequest(a.ReleaseAddress(pool.PoolID, netip.Addr{})))

			require.NoError(t, a.ReleasePool(pool.PoolID))
			require.NoError(t, a.ReleasePool(explicit.PoolID))
			assert.EqualError(t, a.ReleasePool(pool.PoolID), "remote: pool fakeLocal/10.20.0.0/24 not found")
			f.mu.Lock()
			assert.Empty(t, f.pools)
			f.mu.Unlock()
		})
	}
}

// handWrittenIPAM serves fixed JSON replies, for answers go-plugins-helpers
// cannot give (the Error field in a 200 reply, missing methods, bad data).
func handWrittenIPAM(t *testing.T, replies map[string]any, seen *[]string, mu *sync.Mutex) ipamapi.Ipam {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"Implements": ["IpamDriver"]}`)
	})
	for method, reply := range replies {
		mux.HandleFunc("/IpamDriver."+method, func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			*seen = append(*seen, method+" "+string(body))
			mu.Unlock()
			json.NewEncoder(w).Encode(reply)
		})
	}
	c, _ := serve(t, plugintest.HTTP{Handler: mux}, false, 5*time.Second)
	a, err := remote.New(c)
	require.NoError(t, err)
	return a
}

func TestIPAMHandWritten(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	a := handWrittenIPAM(t, map[string]any{
		// No GetCapabilities: a plugin older than that call.
		"GetDefaultAddressSpaces": map[string]string{"Error": "spaces are closed"},
		"RequestAddress":          map[string]string{"Address": ""},
		"RequestPool":             map[string]string{"PoolID": "p1", "Pool": "2001:db8::/64"},
		"ReleasePool":             map[string]string{},
		"ReleaseAddress":          map[string]string{"Error": "cannot release"},
	}, &seen, &mu)

	assert.Equal(t, ipamapi.Capability{}, a.Capabilities(), "no GetCapabilities: no capabilities")

	_, _, err := a.GetDefaultAddressSpaces()
	assert.EqualError(t, err, "remote: spaces are closed")
	assert.True(t, types.IsInternal(err))
	var pe *plugins.PluginError
	require.True(t, errors.As(err, &pe))
	assert.Equal(t, "IpamDriver.GetDefaultAddressSpaces", pe.Method)

	_, _, err = a.RequestAddress("p1", netip.Addr{}, nil)
	assert.True(t, errors.Is(err, ipamapi.ErrNoIPReturned), "got %v", err)
	assert.True(t, types.IsNoService(err))

	err = a.ReleaseAddress("p1", netip.MustParseAddr("10.0.0.1"))
	assert.EqualError(t, err, "remote: cannot release")

	// A v6 pool for a v4 request is refused and the pool handed back.
	_, err = a.RequestPool(ipamapi.PoolRequest{AddressSpace: "x"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid reply to RequestPool")
	mu.Lock()
	assert.Contains(t, seen, `ReleasePool {"PoolID":"p1"}`)
	mu.Unlock()
}

func TestIPAMPluginDies(t *testing.T) {
	const timeout = time.Second
	f := newFakeIPAM()
	c, srv := serve(t, ipam.NewHandler(f), true, timeout)
	a, err := remote.New(c)
	require.NoError(t, err)
	pool, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: "s"})
	require.NoError(t, err)

	inCall := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f.mu.Lock()
	f.hook = func() { close(inCall); <-release }
	f.mu.Unlock()
	go func() { <-inCall; srv.Kill() }()

	start := time.Now()
	_, _, err = a.RequestAddress(pool.PoolID, netip.Addr{}, nil)
	require.Error(t, err)
	assert.True(t, types.IsInternal(err) || types.IsTimeout(err), "got %v", err)
	assert.Less(t, time.Since(start), timeout+500*time.Millisecond)

	err = a.ReleasePool(pool.PoolID)
	assert.True(t, types.IsTimeout(err), "nobody listens any more: %v", err)
}

// New reads a refused GetCapabilities as "no capabilities", but a plugin
// that does not answer fails New at once rather than making every later
// call wait out the timeout again.
func TestIPAMNewCapabilities(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	a := handWrittenIPAM(t, map[string]any{
		"GetCapabilities": map[string]string{"Error": "no capabilities here"},
	}, &seen, &mu)
	assert.Equal(t, ipamapi.Capability{}, a.Capabilities(), "refused GetCapabilities: no capabilities")

	const timeout = 300 * time.Millisecond
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"Implements": ["IpamDriver"]}`)
	})
	mux.HandleFunc("/", func(http.ResponseWriter, *http.Request) { <-release })
	c, _ := serve(t, plugintest.HTTP{Handler: mux}, false, timeout)
	t.Cleanup(func() { close(release) })
	start := time.Now()
	_, err := remote.New(c)
	assert.True(t, types.IsTimeout(err), "hung GetCapabilities: want Timeout, got %v", err)
	assert.Less(t, time.Since(start), timeout+500*time.Millisecond)
}

// TestIPAMHostileReplies: an IPAM plugin answering with a 200 MB body or
// one without end fails the call as Internal, costing the process a
// bounded amount of memory, and a reply still arriving at the deadline is
// a Timeout. GetCapabilities is where New meets it first: a flood there is
// not "no capabilities" but a failed New.
func TestIPAMHostileReplies(t *testing.T) {
	const maxGrowth = 64 << 20 // generous: the client's cap is 1 MiB
	for _, tc := range []struct {
		name    string
		reply   http.HandlerFunc
		class   func(error) bool
		timeout time.Duration // generous where the call must fail on size
	}{
		{"200 MB", plugintest.Flood(`{"Error":"`, 200<<20), types.IsInternal, 10 * time.Second},
		{"endless", plugintest.Flood(`{"PoolID":"`, -1), types.IsInternal, 10 * time.Second},
		{"still arriving at the deadline", plugintest.Trickle(`{"PoolID":"`, 20*time.Millisecond), types.IsTimeout, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{"GetCapabilities", "RequestPool"} {
				mux := http.NewServeMux()
				mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
					io.WriteString(w, `{"Implements": ["IpamDriver"]}`)
				})
				mux.HandleFunc("/IpamDriver."+method, tc.reply)
				if method != "GetCapabilities" {
					mux.HandleFunc("/IpamDriver.GetCapabilities", func(w http.ResponseWriter, _ *http.Request) {
						io.WriteString(w, `{}`)
					})
				}
				c, _ := serve(t, plugintest.HTTP{Handler: mux}, false, tc.timeout)
				var err error
				g := testutil.MeasureGrowth(t, func() {
					var a ipamapi.Ipam
					if a, err = remote.New(c); err == nil {
						_, err = a.RequestPool(ipamapi.PoolRequest{AddressSpace: "s"})
					}
				})
				assert.True(t, tc.class(err), "%s: got %v", method, err)
				assert.Less(t, g.PeakRSS, uint64(maxGrowth), "%s: peak RSS growth", method)
				assert.Less(t, g.Alloc, uint64(maxGrowth), "%s: heap allocated", method)
			}
		})
	}
}
