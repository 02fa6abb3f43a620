package portmapper_test

import (
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/opencnm/libnetwork/portmapper"
	"github.com/opencnm/libnetwork/types"
)

type rkey struct {
	proto types.Protocol
	v6    bool
	ip    string // "" = every address
	port  uint16
}

func keyFor(proto types.Protocol, ip net.IP, port uint16) rkey {
	k := rkey{proto: proto, v6: ip.To4() == nil, port: port}
	if !ip.IsUnspecified() {
		k.ip = ip.String()
	}
	return k
}

// fakeReserver stands in for sockets: a port is held per protocol, family,
// address and port, an unspecified address overlapping every address, as
// the kernel does for listening sockets.
type fakeReserver struct {
	mu     sync.Mutex
	held   map[rkey]int
	lo, hi uint16
}

func newFakeReserver() *fakeReserver {
	return &fakeReserver{held: map[rkey]int{}, lo: 40000, hi: 40009}
}

func (f *fakeReserver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.held {
		n += c
	}
	return n
}

// Reserve implements portmapper.Reserver.
func (f *fakeReserver) Reserve(proto types.Protocol, ip net.IP, port uint16) (io.Closer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	want := keyFor(proto, ip, port)
	for k, n := range f.held {
		if n > 0 && k.proto == want.proto && k.v6 == want.v6 && k.port == want.port &&
			(k.ip == want.ip || k.ip == "" || want.ip == "") {
			return nil, fmt.Errorf("%w: fake bind", portmapper.ErrPortInUse)
		}
	}
	f.held[want]++
	return closer(func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.held[want]--; f.held[want] <= 0 {
			delete(f.held, want)
		}
		return nil
	}), nil
}

// EphemeralRange implements portmapper.Reserver.
func (f *fakeReserver) EphemeralRange() (uint16, uint16, error) { return f.lo, f.hi, nil }

type closer func() error

func (c closer) Close() error { return c() }

// fakeConntrack records flushed flows, or fails with fail when set.
type fakeConntrack struct {
	mu    sync.Mutex
	flows []portmapper.Flow
	fail  error
}

func (c *fakeConntrack) DeleteFlows(flows []portmapper.Flow) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.flows = append(c.flows, flows...)
	return nil
}

// failWith makes every DeleteFlows fail with err (nil: succeed again).
func (c *fakeConntrack) failWith(err error) {
	c.mu.Lock()
	c.fail = err
	c.mu.Unlock()
}
