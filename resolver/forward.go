package resolver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// upstream is one forwarding target with its health record.
type upstream struct {
	Upstream

	mu        sync.Mutex // guards the fields below
	queries   uint64
	failures  uint64
	streak    int       // consecutive transport failures
	downUntil time.Time // while in the future, tried only after healthy ones
}

func (u *upstream) status(now time.Time) UpstreamStatus {
	u.mu.Lock()
	defer u.mu.Unlock()
	return UpstreamStatus{Upstream: u.Upstream, Queries: u.queries, Failures: u.failures, Down: now.Before(u.downUntil)}
}

func (u *upstream) record(ok bool, threshold int, downFor time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.queries++
	if ok {
		u.streak = 0
		u.downUntil = time.Time{}
		return
	}
	u.failures++
	u.streak++
	if u.streak >= threshold {
		u.downUntil = time.Now().Add(downFor)
	}
}

func (u *upstream) down(now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return now.Before(u.downUntil)
}

// order returns the upstreams to try: healthy ones in configured order, then
// those marked down (still tried, as a last resort, so a query is never
// refused just because every server had a bad minute).
func (r *Resolver) order() []*upstream {
	r.mu.Lock()
	ups := append([]*upstream(nil), r.upstreams...)
	r.mu.Unlock()
	now := time.Now()
	var healthy, down []*upstream
	for _, u := range ups {
		if u.down(now) {
			down = append(down, u)
		} else {
			healthy = append(healthy, u)
		}
	}
	return append(healthy, down...)
}

// forward asks the upstreams in turn, over the transport the client used.
// SERVFAIL, REFUSED, NOTIMP and FORMERR mean "ask the next one"; any other
// answer (including NXDOMAIN) is final. With no upstream, or too many
// forwards in flight, the answer is SERVFAIL.
func (r *Resolver) forward(q *dns.Msg, tcp bool) *dns.Msg {
	ups := r.order()
	if len(ups) == 0 {
		return reply(q, dns.RcodeServerFailure)
	}
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	default:
		r.cfg.Logger.Warn("dns forwarding refused: too many queries in flight", "name", qname(q), "max", r.cfg.MaxForwards)
		return reply(q, dns.RcodeServerFailure)
	}
	network := "udp"
	if tcp {
		network = "tcp"
	}
	var last *dns.Msg
	var failed []error
	for _, u := range ups {
		resp, err := r.exchange(u, q, network)
		if err != nil {
			if r.ctx.Err() != nil {
				break // closing: no point asking the others
			}
			r.cfg.Logger.Debug("dns forwarding attempt failed", "name", qname(q), "upstream", u.AddrPort.String(), "transport", network, "err", err)
			failed = append(failed, err)
			continue
		}
		switch resp.Rcode {
		case dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeNotImplemented, dns.RcodeFormatError:
			last = resp
			continue
		}
		return resp
	}
	if last != nil {
		return last
	}
	if r.ctx.Err() != nil {
		return reply(q, dns.RcodeServerFailure)
	}
	r.cfg.Logger.Warn("dns forwarding failed: no upstream answered", "name", qname(q), "transport", network,
		"upstreams", len(ups), "err", errors.Join(failed...))
	return reply(q, dns.RcodeServerFailure)
}

func qname(q *dns.Msg) string {
	if len(q.Question) == 0 {
		return ""
	}
	return q.Question[0].Name
}

// exchange sends q to u, retrying over TCP when a UDP answer is truncated
// (the client gets the full answer if it fits its buffer, and a TC answer to
// retry with otherwise). Only transport failures count against u's health.
func (r *Resolver) exchange(u *upstream, q *dns.Msg, network string) (*dns.Msg, error) {
	m := q.Copy()
	m.Id = dns.Id() // our own ID towards upstream; the client's is restored below
	resp, err := r.exchangeOnce(u, m, network)
	if err == nil && network == "udp" && resp.Truncated {
		if full, err := r.exchangeOnce(u, m, "tcp"); err == nil {
			resp = full
		}
	}
	if err != nil {
		return nil, err
	}
	resp.Id = q.Id
	return resp, nil
}

func (r *Resolver) exchangeOnce(u *upstream, m *dns.Msg, network string) (resp *dns.Msg, err error) {
	defer func() { u.record(err == nil, r.cfg.FailThreshold, r.cfg.DownFor) }()
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
	defer cancel()
	conn, err := r.dial(ctx, network, u.Upstream)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// Close aborts a query in flight at once instead of at its deadline.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return nil, err
		}
	}
	c := &dns.Client{Net: network, Timeout: r.cfg.Timeout, UDPSize: dns.MaxMsgSize}
	resp, _, err = c.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: conn})
	return resp, err
}
