package resolver

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/opencnm/libnetwork/types"
)

// serveDNS answers one query. It never panics on odd input: miekg/dns has
// already parsed the message, and every field used here is checked.
func (r *Resolver) serveDNS(w dns.ResponseWriter, q *dns.Msg) {
	tcp := false
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		tcp = true
	}
	resp := r.answer(q, tcp)
	if !tcp {
		// Clients without EDNS accept 512 bytes; Truncate sets TC when it
		// has to drop records, and the client retries over TCP.
		resp.Truncate(udpSize(q))
	}
	_ = w.WriteMsg(resp) // a client that went away is not our error
}

// answer builds the reply to q: local, forwarded, or an error code.
func (r *Resolver) answer(q *dns.Msg, tcp bool) *dns.Msg {
	if q.Opcode != dns.OpcodeQuery {
		return reply(q, dns.RcodeNotImplemented)
	}
	if len(q.Question) != 1 {
		return reply(q, dns.RcodeFormatError)
	}
	qn := q.Question[0]
	name := strings.ToLower(strings.TrimSuffix(qn.Name, "."))
	if qn.Qclass == dns.ClassINET && name != "" {
		if resp := r.local(q, qn, name); resp != nil {
			return resp
		}
	}
	return r.forward(q, tcp)
}

// local answers from the backend, or returns nil to forward.
func (r *Resolver) local(q *dns.Msg, qn dns.Question, name string) *dns.Msg {
	switch qn.Qtype {
	case dns.TypeA, dns.TypeAAAA:
		family := types.IPv4
		if qn.Qtype == dns.TypeAAAA {
			family = types.IPv6
		}
		ips, knownNoAddr := r.cfg.Backend.ResolveName(name, family)
		resp := reply(q, dns.RcodeSuccess)
		resp.Authoritative = true
		if len(ips) > 1 {
			ips = slices.Clone(ips) // the backend's slice is not ours to shuffle
			rand.Shuffle(len(ips), func(i, j int) { ips[i], ips[j] = ips[j], ips[i] })
		}
		for _, ip := range ips {
			if rr := r.addrRR(qn.Name, ip, qn.Qtype); rr != nil {
				resp.Answer = append(resp.Answer, rr)
			}
		}
		if len(ips) == 0 && !knownNoAddr {
			return nil
		}
		return resp
	case dns.TypePTR:
		ip, ok := ptrIP(name)
		if !ok {
			return nil
		}
		host := r.cfg.Backend.ResolveIP(ip.String())
		if host == "" {
			return nil
		}
		resp := reply(q, dns.RcodeSuccess)
		resp.Authoritative = true
		resp.Answer = append(resp.Answer, &dns.PTR{
			Hdr: dns.RR_Header{Name: qn.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: r.cfg.TTL},
			Ptr: dns.Fqdn(host),
		})
		return resp
	default:
		// A container name exists only here: answer "no records of that
		// type" (MX, TXT, ...) rather than leaking the name upstream.
		if ips, known := r.cfg.Backend.ResolveName(name, types.IP); len(ips) > 0 || known {
			resp := reply(q, dns.RcodeSuccess)
			resp.Authoritative = true
			return resp
		}
		return nil
	}
}

func (r *Resolver) addrRR(owner string, ip net.IP, qtype uint16) dns.RR {
	hdr := dns.RR_Header{Name: owner, Rrtype: qtype, Class: dns.ClassINET, Ttl: r.cfg.TTL}
	if qtype == dns.TypeA {
		if v4 := ip.To4(); v4 != nil {
			return &dns.A{Hdr: hdr, A: v4}
		}
		return nil
	}
	if ip.To4() == nil && len(ip) == net.IPv6len {
		return &dns.AAAA{Hdr: hdr, AAAA: ip}
	}
	return nil
}

// reply returns an empty response to q with rcode, echoing EDNS if q had it.
func reply(q *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.RecursionAvailable = true
	if opt := q.IsEdns0(); opt != nil {
		m.SetEdns0(maxUDP, false)
	}
	return m
}

// maxUDP is the EDNS buffer size advertised in replies: the common
// fragmentation-safe value.
const maxUDP = 1232

// udpSize is the largest UDP reply q's sender accepts.
func udpSize(q *dns.Msg) int {
	if opt := q.IsEdns0(); opt != nil && int(opt.UDPSize()) > dns.MinMsgSize {
		return min(int(opt.UDPSize()), dns.MaxMsgSize)
	}
	return dns.MinMsgSize
}

// ptrIP turns a reverse name (lower case, no trailing dot) into an address.
func ptrIP(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(rest, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(parts[3] + "." + parts[2] + "." + parts[1] + "." + parts[0])
		return a, err == nil
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		nibbles := strings.Split(rest, ".")
		if len(nibbles) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, n := range nibbles {
			if len(n) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", n[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			// nibbles[0] is the lowest nibble of the last byte.
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
