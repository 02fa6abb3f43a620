package etcd

import "testing"

func TestDialTarget(t *testing.T) {
	for in, want := range map[string][2]string{
		"unix:///run/e/c:0":     {"unix", "/run/e/c:0"},
		"unixs:///run/e/c:0":    {"unix", "/run/e/c:0"},
		"https://10.0.0.1:2379": {"tcp", "10.0.0.1:2379"},
		"http://[fd00::1]:2379": {"tcp", "[fd00::1]:2379"},
		"192.168.100.2:2379":    {"tcp", "192.168.100.2:2379"},
	} {
		if n, a := dialTarget(in); n != want[0] || a != want[1] {
			t.Errorf("dialTarget(%q) = %s %s, want %s %s", in, n, a, want[0], want[1])
		}
	}
}
