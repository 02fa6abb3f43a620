package etcdproc

import (
	"os"
	"testing"
)

// StartT starts a member for t and kills it when t ends. Without the etcd
// binary it skips, except under CI=true, where it fails.
func StartT(t testing.TB, o Options) *Member {
	t.Helper()
	requireBinary(t)
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	m, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Kill)
	return m
}

func requireBinary(t testing.TB) {
	t.Helper()
	if _, err := Binary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true forbids skipping)", err)
		}
		t.Skip(err)
	}
}
