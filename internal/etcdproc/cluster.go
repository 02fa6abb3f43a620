package etcdproc

import (
	"fmt"
	"strings"
	"testing"
)

// StartCluster starts an n-member cluster whose members m1..mn share dir:
// their sockets (unix://mI-c:0 client, unix://mI-p:0 peer; relative names,
// so every member must run in dir) and their data directories. It waits
// until every member serves. Members in their own namespaces, on underlay
// addresses, are started one by one with Start and Options.InitialCluster.
func StartCluster(dir string, n int) ([]*Member, error) {
	var ms []*Member
	var peers []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("m%d", i)
		peers = append(peers, name+"=unix://"+name+"-p:0")
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("m%d", i)
		bin, err := Binary()
		if err != nil {
			return nil, err
		}
		ms = append(ms, &Member{bin: bin, o: Options{Dir: dir, Name: name,
			ClientURL: "unix://" + name + "-c:0", PeerURL: "unix://" + name + "-p:0",
			InitialCluster: strings.Join(peers, ",")}})
	}
	kill := func() {
		for _, m := range ms {
			m.Kill()
		}
	}
	// All processes first: none is healthy before a quorum runs.
	for _, m := range ms {
		if err := m.spawn(); err != nil {
			kill()
			return nil, err
		}
	}
	for _, m := range ms {
		if err := m.ready(); err != nil {
			kill()
			return nil, err
		}
	}
	return ms, nil
}

// StartClusterT is StartCluster for t, in a temp dir, killed when t ends;
// without the binary it skips (fails under CI=true), as StartT.
func StartClusterT(t testing.TB, n int) []*Member {
	t.Helper()
	requireBinary(t)
	ms, err := StartCluster(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, m := range ms {
			m.Kill()
		}
	})
	return ms
}

// Endpoints lists the client URLs of ms.
func Endpoints(ms []*Member) []string {
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.Endpoint())
	}
	return eps
}
