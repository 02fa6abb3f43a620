package osl

import (
	"sync"

	"github.com/opencnm/libnetwork/types"
)

// Pool keeps a few sandboxes made ahead in namespaces nothing has mounted
// yet (lo up, IPv6 off), so New only has to bind-mount one at its key.
// Creating a namespace is ~0.65 ms of kernel time and lo and the IPv6
// sysctl another ~0.35 ms, most of a sandbox's creation; made ahead on the
// other CPU they leave the caller a ~0.05 ms mount. An unmounted namespace
// is held by its fd alone, so a crash leaks nothing: the kernel frees it
// with the process.
//
// The pool starts filling at its first New (a controller that never makes
// a sandbox pays nothing) and refills after every New.
type Pool struct {
	size  int
	ready chan *Sandbox

	mu      sync.Mutex
	closed  bool
	filling bool
	wg      sync.WaitGroup
}

// NewPool returns a pool that keeps up to size sandboxes ready.
func NewPool(size int) *Pool {
	return &Pool{size: size, ready: make(chan *Sandbox, size)}
}

// New returns a sandbox mounted at key, from the pool if one is ready,
// else made now (as the package-level New).
func (p *Pool) New(key string) (*Sandbox, error) {
	if key == "" {
		return nil, types.BadRequestErrorf("creating sandbox: empty key")
	}
	var s *Sandbox
	select {
	case s = <-p.ready:
	default:
	}
	p.fill()
	if s == nil {
		return New(key)
	}
	if err := s.mount(key); err != nil {
		return nil, err
	}
	return s, nil
}

// fill starts a background refill unless one runs or the pool is closed.
func (p *Pool) fill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.filling {
		return
	}
	p.filling = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			p.mu.Lock()
			if p.closed || len(p.ready) == p.size {
				p.filling = false
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			s, err := prepare()
			if err != nil {
				// New makes its own and reports the error; no retry loop.
				p.mu.Lock()
				p.filling = false
				p.mu.Unlock()
				return
			}
			p.ready <- s // room: only this goroutine adds, and it checked
		}
	}()
}

// Close stops refilling and releases the sandboxes made ahead.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
	for {
		select {
		case s := <-p.ready:
			s.closeHandles()
		default:
			return
		}
	}
}
