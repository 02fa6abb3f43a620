package globalstore

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"
)

// EventKind says what a watch Event carries.
type EventKind int

const (
	// Resync carries the whole state (Snapshot): the first event of a
	// watch, and again whenever the watch had to re-list (the store
	// compacted past it, or the stream broke). The consumer replaces its
	// view with the snapshot.
	Resync EventKind = iota
	NetworkPut
	NetworkDelete
	EndpointPut
	EndpointDelete
	PeerPut
	PeerDelete
	HostPut
	HostDelete
)

// Event is one change of the records a controller mirrors. For a put the
// record is set; for a delete only the IDs (NetworkID, EndpointID, HostID).
type Event struct {
	Kind     EventKind
	Revision int64

	Network  *Network
	Endpoint *Endpoint
	Peer     *Peer
	Host     *Host
	Snapshot *Snapshot

	NetworkID, EndpointID, HostID string
}

// Snapshot is every record at one revision.
type Snapshot struct {
	Revision  int64
	Networks  []Network
	Endpoints []Endpoint
	Peers     []Peer
	Hosts     []Host
}

// Watch streams record changes until ctx ends, then closes the channel. It
// starts with a Resync, then follows the store from the snapshot's
// revision on. When the stream breaks it resumes after the last revision it
// delivered; when the store compacted past that revision it lists again and
// sends a new Resync. It waits between failed attempts (50 ms doubling to
// 2 s), so an unreachable store or a compaction never makes it spin.
func (s *Store) Watch(ctx context.Context) <-chan Event { return s.watch(ctx, 0) }

// watch follows the store from revision from+1 on, first listing when from
// is 0.
func (s *Store) watch(ctx context.Context, from int64) <-chan Event {
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		wait := time.Duration(0)
		for ctx.Err() == nil {
			if wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			wait = min(max(2*wait, 50*time.Millisecond), 2*time.Second)
			if from == 0 {
				snap, err := s.snapshot(ctx)
				if err != nil {
					continue
				}
				if !send(ctx, out, Event{Kind: Resync, Revision: snap.Revision, Snapshot: snap}) {
					return
				}
				from = snap.Revision
			}
			wctx, stop := context.WithCancel(ctx)
			for b := range s.kv.Watch(wctx, s.k.p+"/", from+1) {
				if b.Err != nil {
					if errors.Is(b.Err, ErrCompacted) {
						// The history after from is gone: re-list, now.
						from, wait = 0, 0
					}
					break
				}
				wait = 0
				for _, kv := range b.Events {
					from = kv.Revision
					ev, ok := s.decode(kv)
					if ok && !send(ctx, out, ev) {
						stop()
						return
					}
				}
			}
			// The stream ended (the store restarted, lost its leader, or
			// compacted): resume after the last revision seen, or re-list.
			stop()
		}
	}()
	return out
}

func send(ctx context.Context, out chan<- Event, ev Event) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Store) snapshot(ctx context.Context) (*Snapshot, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	kvs, rev, err := s.kv.List(cctx, s.k.p+"/")
	if err != nil {
		return nil, unavailable("list for watch", err)
	}
	snap := &Snapshot{Revision: rev}
	for _, kv := range kvs {
		ev, ok := s.decode(KVEvent{Type: EventPut, Key: kv.Key, Value: kv.Value, Revision: kv.ModRevision})
		if !ok {
			continue
		}
		switch {
		case ev.Network != nil:
			snap.Networks = append(snap.Networks, *ev.Network)
		case ev.Endpoint != nil:
			snap.Endpoints = append(snap.Endpoints, *ev.Endpoint)
		case ev.Peer != nil:
			snap.Peers = append(snap.Peers, *ev.Peer)
		case ev.Host != nil:
			snap.Hosts = append(snap.Hosts, *ev.Host)
		}
	}
	return snap, nil
}

// decode turns a key change into an Event; claims and unknown keys are not
// events (the records carry what a mirror needs).
func (s *Store) decode(kv KVEvent) (Event, bool) {
	parts := strings.Split(strings.TrimPrefix(kv.Key, s.k.p+"/"), "/")
	for i := range parts {
		if u, err := url.PathUnescape(parts[i]); err == nil {
			parts[i] = u
		}
	}
	put := kv.Type == EventPut
	ev := Event{Revision: kv.Revision}
	var rec any
	switch {
	case len(parts) == 2 && parts[0] == "hosts":
		ev.HostID, ev.Kind = parts[1], pick(put, HostPut, HostDelete)
		if put {
			ev.Host = &Host{}
			rec = ev.Host
		}
	case len(parts) == 3 && parts[0] == "nets" && parts[2] == "config":
		ev.NetworkID, ev.Kind = parts[1], pick(put, NetworkPut, NetworkDelete)
		if put {
			ev.Network = &Network{}
			rec = ev.Network
		}
	case len(parts) == 4 && parts[0] == "nets" && parts[2] == "ep":
		ev.NetworkID, ev.EndpointID, ev.Kind = parts[1], parts[3], pick(put, EndpointPut, EndpointDelete)
		if put {
			ev.Endpoint = &Endpoint{}
			rec = ev.Endpoint
		}
	case len(parts) == 4 && parts[0] == "nets" && parts[2] == "peer":
		ev.NetworkID, ev.EndpointID, ev.Kind = parts[1], parts[3], pick(put, PeerPut, PeerDelete)
		if put {
			ev.Peer = &Peer{}
			rec = ev.Peer
		}
	default:
		return ev, false
	}
	if rec != nil && json.Unmarshal(kv.Value, rec) != nil {
		return ev, false
	}
	return ev, true
}

func pick(put bool, a, b EventKind) EventKind {
	if put {
		return a
	}
	return b
}

// WatchFrom is Watch for a consumer that already holds the state at
// revision rev (a mirror kept across a restart): it sends changes after rev
// with no first Resync, unless the store compacted past rev, in which case
// it re-lists and sends a Resync. rev <= 0 is Watch.
func (s *Store) WatchFrom(ctx context.Context, rev int64) <-chan Event {
	if rev <= 0 {
		return s.Watch(ctx)
	}
	return s.watch(ctx, rev)
}
