package nftports

import (
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/firewall"
)

const icmp6PortUnreach = 4 // ICMPV6_PORT_UNREACH

// rules returns the rules of chain, in order. IPv6's output chain first
// refuses what would be DNATed from [::1]: the kernel drops the container's
// answer to ::1 (a loopback address never arrives from another interface),
// so without the refusal a client of [::1]:port waits for its timeout,
// and one that tries ::1 before 127.0.0.1 (localhost) with it. TCP gets a
// reset (connection refused), anything else an ICMPv6 port unreachable
// (the sender's send fails at once).
func (l layout) rules(chain string) [][]expr.Any {
	rs := [][]expr.Any{l.hostRule(), l.anyRule()}
	if l.fam == firewall.IPv6 && chain == ChainOutput {
		rs = append([][]expr.Any{l.refuseLoopback(true), l.refuseLoopback(false)}, rs...)
	}
	return rs
}

// refuseLoopback is "ip6 daddr ::1 [meta l4proto tcp] meta l4proto . th
// dport @anyaddr reject [with tcp reset]".
func (l layout) refuseLoopback(tcp bool) []expr.Any {
	es := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: l.daddrOff, Len: uint32(l.addrLen)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net.IPv6loopback},
	}
	reject := &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmp6PortUnreach}
	if tcp {
		es = append(es,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}})
		reject = &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}
	}
	return append(es,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32},
		&expr.Payload{DestRegister: reg32 + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		// A lookup without a destination only tests the key's presence.
		&expr.Lookup{SourceRegister: reg32, SetName: l.any.Name, SetID: l.any.ID},
		reject)
}

// hostRule is "dnat to ip daddr . meta l4proto . th dport map @hostaddr".
func (l layout) hostRule() []expr.Any {
	a := uint32(l.addrLen / 4) // registers the address takes
	return append([]expr.Any{
		&expr.Payload{DestRegister: reg32, Base: expr.PayloadBaseNetworkHeader, Offset: l.daddrOff, Len: uint32(l.addrLen)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32 + a},
		&expr.Payload{DestRegister: reg32 + a + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}, l.dnat(l.host)...)
}

// anyRule is "fib daddr type local dnat to meta l4proto . th dport map
// @anyaddr": any address of the host, loopback included.
func (l layout) anyRule() []expr.Any {
	return append([]expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32},
		&expr.Payload{DestRegister: reg32 + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}, l.dnat(l.any)...)
}

// dnat looks the key up in s and DNATs to the address . port found (no
// match: the rule ends there).
func (l layout) dnat(s *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Lookup{SourceRegister: reg32, DestRegister: reg32, IsDestRegSet: true, SetName: s.Name, SetID: s.ID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(l.nfproto),
			RegAddrMin: reg32, RegProtoMin: reg32 + uint32(l.addrLen/4), Specified: true},
	}
}
