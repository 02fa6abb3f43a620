package macaddr

import "testing"

func TestRandomIsUnicastLocal(t *testing.T) {
	seen := map[string]bool{}
	for range 64 {
		m := Random()
		if len(m) != 6 || m[0]&0x01 != 0 || m[0]&0x02 == 0 {
			t.Fatalf("%s is not a unicast, locally administered MAC", m)
		}
		seen[m.String()] = true
	}
	if len(seen) < 60 {
		t.Fatalf("only %d distinct MACs in 64", len(seen))
	}
}
