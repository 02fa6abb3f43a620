package etcdproc

import (
	"errors"
	"testing"
)

// StartMembers starts the members of one cluster, each described in full
// (Dir, Name, ClientURL, PeerURL and the whole InitialCluster; NetNS and
// Dial for members in namespaces of their own, as partition tests put
// them), and waits until every one serves. All processes start first:
// none is healthy before a quorum runs.
func StartMembers(opts []Options) ([]*Member, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	var ms []*Member
	kill := func() {
		for _, m := range ms {
			m.Kill()
		}
	}
	for _, o := range opts {
		if o.Dir == "" || o.Name == "" || o.ClientURL == "" || o.PeerURL == "" || o.InitialCluster == "" {
			kill()
			return nil, errors.New("etcdproc: StartMembers needs Dir, Name, ClientURL, PeerURL and InitialCluster of every member")
		}
		m := &Member{o: o, bin: bin}
		if err := m.spawn(); err != nil {
			kill()
			return nil, err
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		if err := m.ready(); err != nil {
			kill()
			return nil, err
		}
	}
	return ms, nil
}

// StartMembersT is StartMembers for t, killed when t ends; without the
// binary it skips (fails under CI=true), as StartT.
func StartMembersT(t testing.TB, opts []Options) []*Member {
	t.Helper()
	requireBinary(t)
	ms, err := StartMembers(opts)
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
