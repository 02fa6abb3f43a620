// Package nftports is the netlink implementation of firewall.PortMaps:
// the published ports' DNAT as native nftables maps, in a table of our
// own per family (ip / ip6 "opencnm-ports") in one network namespace:
//
//	map hostaddr { daddr . l4proto . dport : addr . port }  ports bound to one host address
//	map anyaddr  { l4proto . dport : addr . port }          ports on every host address
//	chain prerouting (nat, dstnat) and chain output (nat, dstnat):
//	    dnat to daddr . l4proto . dport map @hostaddr
//	    fib daddr type local dnat to l4proto . dport map @anyaddr
//	ip6 output first refuses [::1] to a port in @anyaddr (see rules.go)
//
// Why: nf_tables re-validates every rule reachable from a table's base
// chains on each transaction that adds a rule to the table, so with one
// DNAT rule per port in iptables' nat table, publishing got slower with
// every port published (~0.27 µs per rule and hook). Adding an element
// with plain data to a map triggers no such validation, and this table's
// rules never change after it is made, so a publish costs the same among
// 2,000 ports as among none.
//
// The table is created once and adopted afterwards, never deleted and
// re-created per operation: a transaction that deletes a table or chain
// costs the kernel 7-19 ms (it waits for readers), one that only adds
// ~0.15-0.3 ms.
package nftports

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// Names in the namespace.
const (
	Table       = "opencnm-ports"
	MapHostAddr = "hostaddr"
	MapAnyAddr  = "anyaddr"
	ChainPre    = "prerouting"
	ChainOutput = "output"
)

// The 32-bit registers a lookup's key is assembled in and its data lands
// in (NFT_REG32_00 on): nft pads every part of a concatenation to 4 bytes.
const reg32 = 8

// Maps drives the port maps of one namespace over one netlink socket made
// there. It is safe for concurrent use.
type Maps struct {
	ns *netnsutil.NS

	mu     sync.Mutex
	conn   *nftables.Conn // opened on first use
	closed bool           // Close was called: no socket is opened again
}

var _ firewall.PortMaps = (*Maps)(nil)

// New returns the port maps of ns; nothing is opened until first use.
func New(ns *netnsutil.NS) *Maps { return &Maps{ns: ns} }

// Close releases the netlink socket. The table stays.
func (m *Maps) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if m.conn == nil {
		return nil
	}
	err := m.conn.CloseLasting()
	m.conn = nil
	return err
}

// connLocked returns the socket, made inside the namespace (a socket
// stays in the namespace it was made in, so only its creation switches).
func (m *Maps) connLocked() (*nftables.Conn, error) {
	if m.conn != nil {
		return m.conn, nil
	}
	if m.closed {
		return nil, types.ForbiddenErrorf("port maps of %s are closed", m.ns.Path())
	}
	err := m.ns.Do(func() error {
		var err error
		m.conn, err = nftables.New(nftables.AsLasting())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink socket: %w", err)
	}
	return m.conn, nil
}

// layout is one family's table and maps as the library describes them.
type layout struct {
	fam      firewall.Family
	table    *nftables.Table
	host     *nftables.Set
	any      *nftables.Set
	addrLen  int // 4 or 16
	daddrOff uint32
	nfproto  byte
}

func layoutOf(fam firewall.Family) layout {
	l := layout{fam: fam}
	addrType := nftables.TypeIPAddr
	l.table = &nftables.Table{Name: Table, Family: nftables.TableFamilyIPv4}
	l.addrLen, l.daddrOff, l.nfproto = 4, 16, unix.NFPROTO_IPV4
	if fam == firewall.IPv6 {
		addrType = nftables.TypeIP6Addr
		l.table = &nftables.Table{Name: Table, Family: nftables.TableFamilyIPv6}
		l.addrLen, l.daddrOff, l.nfproto = 16, 24, unix.NFPROTO_IPV6
	}
	data := nftables.MustConcatSetType(addrType, nftables.TypeInetService)
	l.host = &nftables.Set{ID: setIDs.Add(1), Table: l.table, Name: MapHostAddr, IsMap: true, Concatenation: true,
		KeyType:  nftables.MustConcatSetType(addrType, nftables.TypeInetProto, nftables.TypeInetService),
		DataType: data}
	l.any = &nftables.Set{ID: setIDs.Add(1), Table: l.table, Name: MapAnyAddr, IsMap: true, Concatenation: true,
		KeyType:  nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService),
		DataType: data}
	return l
}

// setIDs numbers the maps (an ID need only be unique within a batch).
// nftables.Conn.AddSet numbers a set without one from a package variable
// it does not guard: two controllers in one process raced on it.
var setIDs atomic.Uint32

// Ensure creates the table with its maps and chains in one transaction,
// failing with EEXIST (and changing nothing) when it is there, in which
// case it is adopted: its elements are read back. A table that is there
// but damaged (a map or chain gone, rules flushed: someone edited it) is
// rebuilt in one atomic replace, keeping whatever elements could be read;
// the caller re-publishes what its records say, so nothing stays lost.
func (m *Maps) Ensure(fam firewall.Family) ([]firewall.PortElem, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := layoutOf(fam)
	err := m.runLocked(func(c *nftables.Conn) error { return l.create(c, false, nil) })
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return nil, types.InternalErrorf("creating %s port maps: %w", fam, err)
	}
	var es []firewall.PortElem
	intact := false
	if err := m.runLocked(func(c *nftables.Conn) (err error) {
		if es, err = l.list(c); err != nil {
			es = nil
			return nil // a map is missing: rebuilt below
		}
		intact, err = l.intact(c)
		return err
	}); err != nil {
		return nil, types.InternalErrorf("adopting %s port maps: %w", fam, err)
	}
	if intact {
		return es, nil
	}
	if err := m.runLocked(func(c *nftables.Conn) error { return l.create(c, true, es) }); err != nil {
		return nil, types.InternalErrorf("rebuilding damaged %s port maps: %w", fam, err)
	}
	return es, nil
}

// intact reports whether both chains are there with as many rules as
// create writes (the maps were read already).
func (l layout) intact(c *nftables.Conn) (bool, error) {
	for _, name := range []string{ChainPre, ChainOutput} {
		rules, err := c.GetRules(l.table, &nftables.Chain{Name: name, Table: l.table})
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if len(rules) != len(l.rules(name)) {
			return false, nil
		}
	}
	return true, nil
}

// create queues the table and commits it: made fresh (EEXIST if it is
// there), or with replace an atomic add-delete-add of the whole table
// (the 7-19 ms deleting transaction, so only for repairs) refilled with
// keep.
func (l layout) create(c *nftables.Conn, replace bool, keep []firewall.PortElem) error {
	if replace {
		c.AddTable(l.table)
		c.DelTable(l.table)
		c.AddTable(l.table)
	} else {
		c.CreateTable(l.table)
	}
	for _, s := range []*nftables.Set{l.host, l.any} {
		var els []nftables.SetElement
		for _, e := range keep {
			if e.HostIP.IsValid() != (s == l.host) {
				continue
			}
			el, err := l.encode(e)
			if err != nil {
				return err
			}
			els = append(els, el)
		}
		if err := c.AddSet(s, nil); err != nil {
			return err // only for anonymous sets: never here
		}
		if err := inChunks(s, els, c.SetAddElements); err != nil {
			return err
		}
	}
	for _, hook := range []struct {
		name string
		num  *nftables.ChainHook
	}{{ChainPre, nftables.ChainHookPrerouting}, {ChainOutput, nftables.ChainHookOutput}} {
		ch := c.AddChain(&nftables.Chain{Name: hook.name, Table: l.table, Type: nftables.ChainTypeNAT,
			Hooknum: hook.num, Priority: nftables.ChainPriorityNATDest})
		for _, exprs := range l.rules(hook.name) {
			c.AddRule(&nftables.Rule{Table: l.table, Chain: ch, Exprs: exprs})
		}
	}
	return c.Flush()
}

// Update deletes del and adds add in one transaction.
func (m *Maps) Update(fam firewall.Family, add, del []firewall.PortElem) error {
	l := layoutOf(fam)
	type batch struct {
		set *nftables.Set
		els []nftables.SetElement
		del bool
	}
	var batches []batch
	for _, op := range []struct {
		es  []firewall.PortElem
		del bool
	}{{del, true}, {add, false}} {
		host, any := batch{set: l.host, del: op.del}, batch{set: l.any, del: op.del}
		for _, e := range op.es {
			el, err := l.encode(e)
			if err != nil {
				return err
			}
			if e.HostIP.IsValid() {
				host.els = append(host.els, el)
			} else {
				any.els = append(any.els, el)
			}
		}
		batches = append(batches, host, any)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runLocked(func(c *nftables.Conn) error {
		for _, b := range batches {
			if len(b.els) == 0 {
				continue
			}
			f := c.SetAddElements
			if b.del {
				f = c.SetDeleteElements
			}
			if err := inChunks(b.set, b.els, f); err != nil {
				return err
			}
		}
		return c.Flush()
	})
}

// elemsPerMessage bounds the elements queued in one netlink message. The
// library nests all of a call's elements in one attribute whose length is
// a uint16 that silently wraps past 64 KiB: ~450 elements with their
// owner comments (~140 bytes each) made the kernel reject the message.
// Several messages queued before one Flush are still one transaction.
const elemsPerMessage = 200

// inChunks queues els for s in messages of at most elemsPerMessage.
func inChunks(s *nftables.Set, els []nftables.SetElement, queue func(*nftables.Set, []nftables.SetElement) error) error {
	for len(els) > 0 {
		n := min(len(els), elemsPerMessage)
		if err := queue(s, els[:n]); err != nil {
			return err
		}
		els = els[n:]
	}
	return nil
}

// runLocked hands fn the socket. After a failure the socket is dropped:
// the library may leave unread acknowledgements or a sticky error on it,
// and a fresh one costs ~0.1 ms.
func (m *Maps) runLocked(fn func(*nftables.Conn) error) error {
	c, err := m.connLocked()
	if err != nil {
		return err
	}
	if err := fn(c); err != nil {
		_ = c.CloseLasting()
		m.conn = nil
		return err
	}
	return nil
}

// List reads the elements of both maps; no table is no elements.
func (m *Maps) List(fam firewall.Family) ([]firewall.PortElem, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := layoutOf(fam)
	var es []firewall.PortElem
	err := m.runLocked(func(c *nftables.Conn) error {
		// The elements' dump does not wrap the kernel's errno, so the
		// table is looked for first.
		_, err := c.ListTableOfFamily(Table, l.table.Family)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return err
		}
		es, err = l.list(c)
		return err
	})
	return es, err
}

func (l layout) list(c *nftables.Conn) ([]firewall.PortElem, error) {
	var out []firewall.PortElem
	for _, s := range []*nftables.Set{l.host, l.any} {
		els, err := elementsOf(c, s)
		if err != nil {
			return nil, err
		}
		for _, el := range els {
			e, err := l.decode(s == l.host, el)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	firewall.SortElems(out)
	return out, nil
}

// elementsOf dumps one map. The kernel resumes a dump that spans several
// messages by skipping as many elements as it already sent, so a hash
// table resized in between (it grows in the background after a large
// insert) yields some elements twice and others not at all. Membership is
// stable under our lock, so a dump without a repeated key is complete.
func elementsOf(c *nftables.Conn, s *nftables.Set) ([]nftables.SetElement, error) {
	const tries = 8
	for try := 0; ; try++ {
		els, err := c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("listing map %s: %w", s.Name, err)
		}
		seen := make(map[string]bool, len(els))
		torn := false
		for _, el := range els {
			if seen[string(el.Key)] {
				torn = true
				break
			}
			seen[string(el.Key)] = true
		}
		if !torn {
			return els, nil
		}
		if try == tries {
			return nil, types.InternalErrorf("listing map %s: %d dumps in a row repeated elements", s.Name, tries+1)
		}
		time.Sleep(time.Millisecond) // let the resize finish
	}
}

// Remove deletes the table (so its maps and chains); none is success.
func (m *Maps) Remove(fam firewall.Family) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := layoutOf(fam).table
	return m.runLocked(func(c *nftables.Conn) error {
		c.AddTable(t) // so the delete cannot fail with "no such table"
		c.DelTable(t)
		return c.Flush()
	})
}

// encode lays e out as the maps hold it: every part padded to 4 bytes,
// address and port in network order.
func (l layout) encode(e firewall.PortElem) (nftables.SetElement, error) {
	proto, ok := protoNum[e.Proto]
	if !ok || e.ContainerIP.BitLen() != l.addrLen*8 || (e.HostIP.IsValid() && e.HostIP.BitLen() != l.addrLen*8) {
		return nftables.SetElement{}, types.BadRequestErrorf("port map element %s does not fit the %s maps", e, l.fam)
	}
	var key []byte
	if e.HostIP.IsValid() {
		key = append(key, e.HostIP.AsSlice()...)
	}
	key = append(key, proto, 0, 0, 0)
	key = binary.BigEndian.AppendUint16(key, e.HostPort)
	key = append(key, 0, 0)
	val := binary.BigEndian.AppendUint16(e.ContainerIP.AsSlice(), e.ContainerPort)
	val = append(val, 0, 0)
	return nftables.SetElement{Key: key, Val: val, Comment: e.Owner}, nil
}

func (l layout) decode(host bool, el nftables.SetElement) (firewall.PortElem, error) {
	e := firewall.PortElem{Owner: el.Comment}
	key := el.Key
	want := 8
	if host {
		want += l.addrLen
	}
	if len(key) != want || len(el.Val) != l.addrLen+4 {
		return e, types.InternalErrorf("%s port map element with key %x data %x: unexpected length", l.fam, key, el.Val)
	}
	if host {
		e.HostIP, _ = netip.AddrFromSlice(key[:l.addrLen])
		key = key[l.addrLen:]
	}
	for p, n := range protoNum {
		if n == key[0] {
			e.Proto = p
		}
	}
	e.HostPort = binary.BigEndian.Uint16(key[4:6])
	e.ContainerIP, _ = netip.AddrFromSlice(el.Val[:l.addrLen])
	e.ContainerPort = binary.BigEndian.Uint16(el.Val[l.addrLen:])
	return e, nil
}

var protoNum = map[types.Protocol]byte{
	types.TCP:  unix.IPPROTO_TCP,
	types.UDP:  unix.IPPROTO_UDP,
	types.SCTP: unix.IPPROTO_SCTP,
}
