package plugins

import (
	"slices"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/types"
)

// Registry discovers and activates plugins on demand and keeps the
// activated ones by name. It is safe for concurrent use; concurrent Gets of
// one name share a single discovery and handshake.
type Registry struct {
	dirs    []string
	timeout time.Duration

	mu      sync.Mutex
	plugins map[string]*entry // guarded by mu; activated or activating
	closed  bool              // guarded by mu
}

// entry is one plugin being activated (done open) or activated (done closed).
type entry struct {
	done   chan struct{}
	client *Client // set before done is closed
	err    error   // set before done is closed
}

// NewRegistry returns a registry looking for plugins in dirs (see Discover).
// timeout bounds both how long a plugin that is present but not answering
// is retried during activation and how long each later call may take.
func NewRegistry(dirs []string, timeout time.Duration) *Registry {
	return &Registry{dirs: slices.Clone(dirs), timeout: timeout, plugins: map[string]*entry{}}
}

// Get returns the activated plugin name, discovering and activating it on
// first use. It fails with NotFound at once when no socket or spec file for
// name exists, with Timeout when the plugin exists but does not answer in
// time, and with NotImplemented when the plugin does not implement iface
// (for example "NetworkDriver"). A failed activation is not cached, so a
// later Get tries again.
func (r *Registry) Get(name, iface string) (*Client, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, types.ForbiddenErrorf("get plugin %q: registry closed", name)
	}
	e, ok := r.plugins[name]
	if !ok {
		e = &entry{done: make(chan struct{})}
		r.plugins[name] = e
	}
	r.mu.Unlock()

	if ok {
		<-e.done
	} else {
		e.client, e.err = r.activate(name)
		if e.err != nil {
			r.mu.Lock()
			if r.plugins[name] == e {
				delete(r.plugins, name)
			}
			r.mu.Unlock()
		}
		close(e.done)
	}
	if e.err != nil {
		return nil, e.err
	}
	if !e.client.Implements(iface) {
		return nil, types.NotImplementedErrorf("plugin %q does not implement %s", name, iface)
	}
	return e.client, nil
}

func (r *Registry) activate(name string) (*Client, error) {
	spec, err := Discover(r.dirs, name)
	if err != nil {
		return nil, err
	}
	c, err := NewClient(spec, r.timeout)
	if err != nil {
		return nil, err
	}
	if _, err := c.Activate(); err != nil {
		c.Close()
		return nil, types.Wrapf(err, "activate plugin %q", name)
	}
	return c, nil
}

// Close releases the connections of every activated plugin. Get fails
// after Close. Closing twice is harmless.
func (r *Registry) Close() error {
	r.mu.Lock()
	r.closed = true
	entries := r.plugins
	r.plugins = map[string]*entry{}
	r.mu.Unlock()
	for _, e := range entries {
		<-e.done
		if e.client != nil {
			e.client.Close()
		}
	}
	return nil
}
