package resolver

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswer feeds arbitrary wire messages to the query handler (without
// upstreams, so unknown names take the SERVFAIL path). Properties: no panic,
// and the reply packs and fits the client's UDP buffer.
func FuzzAnswer(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"c1.", dns.TypeA}, {"dual.", dns.TypeAAAA}, {"2.0.18.172.in-addr.arpa.", dns.TypePTR},
		{"c1.", dns.TypeMX}, {"example.org.", dns.TypeTXT}, {".", dns.TypeNS},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, true)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	pc, ln := listenPair(f)
	r, err := New(Config{UDP: pc, TCP: ln, Backend: newFakeBackend()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close() })
	f.Fuzz(func(t *testing.T, wire []byte) {
		q := new(dns.Msg)
		if err := q.Unpack(wire); err != nil {
			return
		}
		for _, tcp := range []bool{false, true} {
			resp := r.answer(q, tcp)
			if resp.Id != q.Id || !resp.Response {
				t.Fatalf("reply id %d response %v for query id %d", resp.Id, resp.Response, q.Id)
			}
			if !tcp {
				resp.Truncate(udpSize(q))
			}
			b, err := resp.Pack()
			if err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, resp)
			}
			if !tcp && len(b) > udpSize(q) {
				t.Fatalf("udp reply of %d bytes for a %d-byte client", len(b), udpSize(q))
			}
		}
	})
}
