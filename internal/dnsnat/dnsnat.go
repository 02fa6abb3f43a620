// Package dnsnat installs, inside one network namespace, the redirect that
// lets an embedded DNS resolver answer on port 53 of its address while its
// sockets sit on random ports: DNAT of queries to addr:53 onto the
// resolver's ports, and SNAT of what the resolver's ports send back to :53.
//
// The rules are native nftables, written over netlink in one transaction:
// no iptables process is forked per sandbox (an iptables-restore costs
// 2-3 ms per namespace, the slowest step of a first join; this costs about
// a tenth of a millisecond). They live in a table of their own, so they
// are replaced or removed whole without reading anything else in the
// namespace, and a repeated Set never stacks rules.
package dnsnat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// Names in the namespace. The chains keep upstream's names so someone who
// knows Docker's layout recognises them in `nft list ruleset`.
const (
	Table          = "opencnm-dns"
	OutputChain    = "DOCKER_OUTPUT"
	PostroutingChn = "DOCKER_POSTROUTING"
)

// Ports are the resolver's ports the redirect leads to.
type Ports struct {
	UDP, TCP uint16
}

// Set makes the namespace redirect addr:53 to p, replacing any redirect a
// previous Set (of this or an earlier run) left. It is atomic: on error
// the namespace holds what it held before.
//
// A transaction that deletes anything costs the kernel 7-19 ms here (it
// waits for readers to drain) against ~0.15 ms for one that only adds, so
// Set first tries to create the table outright, which is all a new
// namespace needs, and replaces an existing one only when that fails.
func Set(ns *netnsutil.NS, addr netip.Addr, p Ports) error {
	if !addr.Is4() || p.UDP == 0 || p.TCP == 0 {
		return types.BadRequestErrorf("dns redirect to %s udp %d tcp %d: need an IPv4 address and two ports", addr, p.UDP, p.TCP)
	}
	err := run(ns, func(c *nftables.Conn) { build(c, true, addr, p) })
	if errors.Is(err, unix.EEXIST) {
		err = run(ns, func(c *nftables.Conn) { build(c, false, addr, p) })
	}
	return err
}

// build queues the redirect's table; fresh creates it (failing with EEXIST
// if it is there), otherwise the table is replaced whole: add-delete-add
// in one transaction is nftables' atomic replace, the first add making the
// delete valid when nothing is there.
func build(c *nftables.Conn, fresh bool, addr netip.Addr, p Ports) {
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyIPv4}
	if fresh {
		c.CreateTable(t)
	} else {
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
	}
	out := c.AddChain(&nftables.Chain{
		Name: OutputChain, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest,
	})
	post := c.AddChain(&nftables.Chain{
		Name: PostroutingChn, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	a := addr.AsSlice()
	for _, r := range []struct {
		proto byte
		port  uint16
	}{{unix.IPPROTO_UDP, p.UDP}, {unix.IPPROTO_TCP, p.TCP}} {
		c.AddRule(&nftables.Rule{Table: t, Chain: out,
			Exprs: natRule(16, a, r.proto, 2, 53, expr.NATTypeDestNAT, a, r.port)})
		c.AddRule(&nftables.Rule{Table: t, Chain: post,
			Exprs: natRule(12, a, r.proto, 0, r.port, expr.NATTypeSourceNAT, a, 53)})
	}
}

// Remove deletes the redirect; a namespace without one is fine.
func Remove(ns *netnsutil.NS) error {
	return run(ns, func(c *nftables.Conn) {
		t := &nftables.Table{Name: Table, Family: nftables.TableFamilyIPv4}
		c.AddTable(t) // so the delete cannot fail with "no such table"
		c.DelTable(t)
	})
}

// Get reads back the ports the namespace's redirect leads to; ok is false
// when there is no redirect.
func Get(ns *netnsutil.NS) (p Ports, ok bool, err error) {
	err = dial(ns, func(c *nftables.Conn) error {
		t, err := c.ListTableOfFamily(Table, nftables.TableFamilyIPv4)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return err
		}
		rules, err := c.GetRules(t, &nftables.Chain{Name: OutputChain, Table: t})
		if err != nil {
			return err
		}
		for _, r := range rules {
			proto, port := decode(r.Exprs)
			switch proto {
			case unix.IPPROTO_UDP:
				p.UDP = port
			case unix.IPPROTO_TCP:
				p.TCP = port
			}
		}
		ok = true
		return nil
	})
	if err != nil {
		return Ports{}, false, types.InternalErrorf("reading dns redirect in %s: %w", ns.Path(), err)
	}
	return p, ok, nil
}

// Intact reports whether the namespace holds the redirect Set(ns, addr,
// p) makes: both chains, each with its two rules, the DNAT leading to p.
// Someone flushing or deleting any of it makes it not intact; Set then
// replaces it whole.
func Intact(ns *netnsutil.NS, p Ports) (bool, error) {
	intact := false
	err := dial(ns, func(c *nftables.Conn) error {
		t, err := c.ListTableOfFamily(Table, nftables.TableFamilyIPv4)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return err
		}
		var got Ports
		for _, name := range []string{OutputChain, PostroutingChn} {
			rules, err := c.GetRules(t, &nftables.Chain{Name: name, Table: t})
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			if err != nil {
				return err
			}
			if len(rules) != 2 {
				return nil
			}
			if name != OutputChain {
				continue
			}
			for _, r := range rules {
				switch proto, port := decode(r.Exprs); proto {
				case unix.IPPROTO_UDP:
					got.UDP = port
				case unix.IPPROTO_TCP:
					got.TCP = port
				}
			}
		}
		intact = got == p
		return nil
	})
	if err != nil {
		return false, types.InternalErrorf("checking dns redirect in %s: %w", ns.Path(), err)
	}
	return intact, nil
}

// Rules counts the rules in the redirect's table (0 when there is none):
// a check that repeated Sets replace rather than stack.
func Rules(ns *netnsutil.NS) (int, error) {
	n := 0
	err := dial(ns, func(c *nftables.Conn) error {
		t, err := c.ListTableOfFamily(Table, nftables.TableFamilyIPv4)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, name := range []string{OutputChain, PostroutingChn} {
			rules, err := c.GetRules(t, &nftables.Chain{Name: name, Table: t})
			if err != nil {
				return err
			}
			n += len(rules)
		}
		return nil
	})
	if err != nil {
		return 0, types.InternalErrorf("counting dns redirect rules in %s: %w", ns.Path(), err)
	}
	return n, nil
}

// natRule is "ip <saddr|daddr at addrOff> == match, l4proto == proto,
// port at portOff == matchPort: <snat|dnat> to to:toPort".
func natRule(addrOff uint32, match []byte, proto byte, portOff uint32, matchPort uint16, typ expr.NATType, to []byte, toPort uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: match},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(matchPort)},
		&expr.Immediate{Register: 1, Data: to},
		&expr.Immediate{Register: 2, Data: be16(toPort)},
		&expr.NAT{Type: typ, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// decode finds the protocol and the port a rule made by natRule maps to.
func decode(es []expr.Any) (proto byte, port uint16) {
	for _, e := range es {
		switch e := e.(type) {
		case *expr.Cmp:
			if len(e.Data) == 1 {
				proto = e.Data[0]
			}
		case *expr.Immediate:
			if e.Register == 2 && len(e.Data) == 2 {
				port = binary.BigEndian.Uint16(e.Data)
			}
		}
	}
	return proto, port
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// run queues one transaction with build and commits it in ns.
func run(ns *netnsutil.NS, build func(*nftables.Conn)) error {
	err := dial(ns, func(c *nftables.Conn) error {
		build(c)
		return c.Flush()
	})
	if err != nil {
		return types.InternalErrorf("writing dns redirect in %s: %w", ns.Path(), err)
	}
	return nil
}

// dial opens a netlink socket inside ns (a socket stays in the namespace
// it was made in, so only its creation needs the switch) and hands fn a
// connection on it.
func dial(ns *netnsutil.NS, fn func(*nftables.Conn) error) error {
	var c *nftables.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = nftables.New(nftables.AsLasting())
		return err
	}); err != nil {
		return fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	defer c.CloseLasting()
	return fn(c)
}
