package memstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
)

type entry struct {
	value []byte
	lease globalstore.LeaseID
	mod   int64
}

type lease struct {
	ttl   time.Duration
	timer *time.Timer
	keys  map[string]bool
}

// Server is one in-memory store; Client gives each host its own KV.
type Server struct {
	mu        sync.Mutex
	rev       int64
	compacted int64 // history at or before this revision is gone
	data      map[string]*entry
	history   []globalstore.KVEvent // revisions after compacted
	leases    map[globalstore.LeaseID]*lease
	nextLease globalstore.LeaseID
	watchers  map[*watcher]bool
	up        chan struct{} // closed while the server is up
}

// New returns a running, empty server.
func New() *Server {
	up := make(chan struct{})
	close(up)
	return &Server{data: map[string]*entry{}, leases: map[globalstore.LeaseID]*lease{},
		watchers: map[*watcher]bool{}, up: up, nextLease: 0x1000}
}

// Stop makes the server unreachable: calls wait until their deadline (or
// Start), and leases stop ageing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.up:
		s.up = make(chan struct{})
		for _, l := range s.leases {
			l.timer.Stop()
		}
	default:
	}
}

// Start makes a stopped server reachable again. Every lease gets a full TTL
// from now, as etcd's new leader gives them.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.up:
	default:
		for _, l := range s.leases {
			l.timer.Reset(l.ttl)
		}
		close(s.up)
	}
}

// Revision is the current revision.
func (s *Server) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// Keys lists every key, sorted (tests count them).
func (s *Server) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// reachable waits while the server is stopped; an ended ctx is
// ErrUnavailable, as a client of an unreachable etcd sees.
func (s *Server) reachable(ctx context.Context) error {
	s.mu.Lock()
	up := s.up
	s.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", globalstore.ErrUnavailable, ctx.Err())
	}
}

func holds(s *Server, c globalstore.Cond) bool {
	switch c.Kind {
	case globalstore.CondAbsent:
		return s.data[c.Key] == nil
	case globalstore.CondExists:
		return s.data[c.Key] != nil
	case globalstore.CondEquals:
		e := s.data[c.Key]
		return e != nil && string(e.value) == string(c.Value)
	case globalstore.CondPrefixEmpty:
		for k := range s.data {
			if strings.HasPrefix(k, c.Key) {
				return false
			}
		}
		return true
	}
	return false
}

func (s *Server) txn(conds []globalstore.Cond, ops []globalstore.Op) (globalstore.TxnResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := true
	for _, c := range conds {
		ok = ok && holds(s, c)
	}
	if !ok {
		vals := map[string][]byte{}
		for _, c := range conds {
			if c.Kind != globalstore.CondPrefixEmpty {
				if e := s.data[c.Key]; e != nil {
					vals[c.Key] = e.value
				}
				continue
			}
			n := 0
			for _, k := range s.sortedKeys(c.Key) {
				if n++; n > 10 {
					break
				}
				vals[k] = s.data[k].value
			}
		}
		return globalstore.TxnResult{Revision: s.rev, Values: vals}, nil
	}
	for _, o := range ops {
		if o.Kind == globalstore.OpPut && o.Lease != globalstore.NoLease && s.leases[o.Lease] == nil {
			return globalstore.TxnResult{}, fmt.Errorf("put %s: %w", o.Key, globalstore.ErrLeaseNotFound)
		}
	}
	var evs []globalstore.KVEvent
	rev := s.rev + 1
	for _, o := range ops {
		switch o.Kind {
		case globalstore.OpPut:
			s.unlease(o.Key)
			s.data[o.Key] = &entry{value: append([]byte(nil), o.Value...), lease: o.Lease, mod: rev}
			if l := s.leases[o.Lease]; l != nil {
				l.keys[o.Key] = true
			}
			evs = append(evs, globalstore.KVEvent{Type: globalstore.EventPut, Key: o.Key, Value: o.Value, Revision: rev})
		case globalstore.OpDelete:
			evs = append(evs, s.del(o.Key, rev)...)
		case globalstore.OpDeletePrefix:
			for _, k := range s.sortedKeys(o.Key) {
				evs = append(evs, s.del(k, rev)...)
			}
		}
	}
	s.commit(evs)
	return globalstore.TxnResult{Succeeded: true, Revision: s.rev}, nil
}

func (s *Server) sortedKeys(prefix string) []string {
	var keys []string
	for k := range s.data {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func (s *Server) unlease(key string) {
	if e := s.data[key]; e != nil {
		if l := s.leases[e.lease]; l != nil {
			delete(l.keys, key)
		}
	}
}

func (s *Server) del(key string, rev int64) []globalstore.KVEvent {
	if s.data[key] == nil {
		return nil
	}
	s.unlease(key)
	delete(s.data, key)
	return []globalstore.KVEvent{{Type: globalstore.EventDelete, Key: key, Revision: rev}}
}

// commit makes evs one revision (none if empty) and hands them to watchers.
func (s *Server) commit(evs []globalstore.KVEvent) {
	if len(evs) == 0 {
		return
	}
	s.rev++
	s.history = append(s.history, evs...)
	for w := range s.watchers {
		w.push(evs)
	}
}

func (s *Server) grant(ttl time.Duration) globalstore.LeaseID {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextLease++
	id := s.nextLease
	l := &lease{ttl: ttl, keys: map[string]bool{}}
	l.timer = time.AfterFunc(ttl, func() { s.revoke(id) })
	s.leases[id] = l
	return id
}

func (s *Server) keepAlive(id globalstore.LeaseID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[id]
	if l == nil {
		return fmt.Errorf("lease %x: %w", int64(id), globalstore.ErrLeaseNotFound)
	}
	l.timer.Reset(l.ttl)
	return nil
}

// revoke deletes a lease and its keys in one revision.
func (s *Server) revoke(id globalstore.LeaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[id]
	if l == nil {
		return
	}
	l.timer.Stop()
	delete(s.leases, id)
	var evs []globalstore.KVEvent
	keys := make([]string, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		delete(s.data, k)
		evs = append(evs, globalstore.KVEvent{Type: globalstore.EventDelete, Key: k, Revision: s.rev + 1})
	}
	s.commit(evs)
}

// Compact drops the history up to rev.
func (s *Server) compact(rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev > s.rev {
		return fmt.Errorf("compact to %d: revision is only %d", rev, s.rev)
	}
	if rev <= s.compacted {
		return fmt.Errorf("compact to %d: already compacted to %d", rev, s.compacted)
	}
	i := sort.Search(len(s.history), func(i int) bool { return s.history[i].Revision > rev })
	s.history = append([]globalstore.KVEvent(nil), s.history[i:]...)
	s.compacted = rev
	return nil
}
