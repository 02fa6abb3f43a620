package faults_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/types"
)

// The etcd process SIGKILLed under the hosts and restarted: global
// creates fail NoService within KVTimeout and leave nothing; a leave, a
// sandbox delete and endpoint deletes succeed locally and reach the store
// once it is back; traffic across hosts and DNS go on throughout. The
// lease TTL (40 s) is long enough that the outage (about 15 s: each
// failed create waits out KVTimeout, and the first try of each local
// delete's store write waits too) stays within TTL minus the fence margin.
func TestStoreOutage(t *testing.T) {
	l := newLabTTL(t, 2, 40*time.Second)
	nw := overlay(t, l.host(1), "ov", "10.80.0.0/24")
	a := run(t, l.host(1), "ov", "a")
	b := run(t, l.host(2), "ov", "b")
	j := run(t, l.host(2), "ov", "j")
	f, err := nw.CreateEndpoint("f")
	if err != nil {
		t.Fatal(err)
	}
	nw2 := netOn(t, l.host(2), "ov")
	for _, h := range l.Hosts {
		eventually(t, 10*time.Second, h.ID+"'s records", func() error {
			return storeMatches(t, l, h.ID, nw.ID(), netOn(t, h, "ov"))
		})
	}
	s := startStream(t, b, a)
	eventually(t, 5*time.Second, "the stream flowing", func() error {
		if s.got.Load() < 20 {
			return fmt.Errorf("%d datagrams arrived", s.got.Load())
		}
		return nil
	})

	l.etcd.Kill()
	began := time.Now()
	if _, err := l.host(1).Controller().NewNetwork("overlay", "ov2", ""); !types.IsNoService(err) {
		t.Errorf("NewNetwork with etcd down: %v, want NoService", err)
	}
	tookNet := time.Since(began)
	began = time.Now()
	if _, err := nw.CreateEndpoint("x"); !types.IsNoService(err) {
		t.Errorf("CreateEndpoint with etcd down: %v, want NoService", err)
	}
	tookEp := time.Since(began)
	t.Logf("with etcd down: NewNetwork failed in %v, CreateEndpoint in %v (KVTimeout %v)", tookNet, tookEp, faultKVTimeout)
	for what, took := range map[string]time.Duration{"NewNetwork": tookNet, "CreateEndpoint": tookEp} {
		if took > faultKVTimeout+3*time.Second {
			t.Errorf("%s took %v with etcd down, KVTimeout is %v", what, took, faultKVTimeout)
		}
	}
	if _, err := l.host(1).Controller().NetworkByName("ov2"); err == nil {
		t.Errorf("network ov2 exists after its create failed")
	}
	for _, ep := range nw.Endpoints() {
		if ep.Name() == "x" {
			t.Errorf("endpoint x exists after its create failed")
		}
	}
	// Local work goes on, each call as fast as with the store up.
	began = time.Now()
	var local []string
	for _, op := range []struct {
		what string
		do   func() error
	}{
		{"leave", func() error { return j.ep.Leave(j.sb) }},
		{"sandbox delete", j.sb.Delete},
		{"endpoint delete", func() error { return j.ep.Delete(false) }},
		{"endpoint delete", func() error { return f.Delete(false) }},
	} {
		opBegan := time.Now()
		if err := op.do(); err != nil {
			t.Errorf("%s with etcd down: %v", op.what, err)
		}
		local = append(local, fmt.Sprintf("%s %v", op.what, time.Since(opBegan).Round(time.Millisecond)))
	}
	t.Logf("with etcd down: %v", local)
	if ips, _ := a.sb.ResolveName("b", types.IPv4); len(ips) != 1 || ips[0].String() != b.ip.String() {
		t.Errorf("with etcd down, b resolves to %v on host-1, want %s", ips, b.ip)
	}
	if len(nw2.Endpoints()) != 1 {
		t.Errorf("host-2 has %d endpoints after the deletes, want 1 (b)", len(nw2.Endpoints()))
	}

	if err := l.etcd.Start(); err != nil {
		t.Fatalf("restarting etcd: %v", err)
	}
	began = time.Now()
	// Clients dial again with a backoff that grew during the outage.
	eventually(t, 30*time.Second, "etcd answering the test's client", func() error {
		_, err := l.st.Hosts(t.Context())
		return err
	})
	for _, h := range l.Hosts {
		eventually(t, 30*time.Second, h.ID+"'s queued work in the store", func() error {
			return storeMatches(t, l, h.ID, nw.ID(), netOn(t, h, "ov"))
		})
	}
	t.Logf("etcd back: the queued deletes and the leave in the store after %v", time.Since(began))
	for _, n := range l.keysOf(t, "host-2", nw.ID()).eps {
		if n.Name == "j" {
			t.Errorf("endpoint j still in the store")
		}
	}
	if _, err := l.st.NetworkByName(t.Context(), "ov2"); !types.IsNotFound(err) {
		t.Errorf("ov2 in the store after its create failed: %v", err)
	}
	if _, err := nw.CreateEndpoint("y"); err != nil {
		t.Errorf("CreateEndpoint with etcd back: %v", err)
	}
	sent, got := s.halt()
	t.Logf("host-2 → host-1 across the outage: %d datagrams sent, %d arrived", sent, got)
	if got != sent {
		t.Errorf("%d of %d datagrams lost across the store outage", sent-got, sent)
	}
}
