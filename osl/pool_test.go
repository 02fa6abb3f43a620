package osl

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// Sandboxes from the pool are what New makes: mounted at their key, a
// namespace of their own, lo up, IPv6 off; Close releases what was made
// ahead and the pool still works after, making sandboxes inline.
func TestPoolHandsOutFreshSandboxes(t *testing.T) {
	testutil.RequireRoot(t)
	p := NewPool(2)
	if _, err := p.New(""); !types.IsBadRequest(err) {
		t.Fatalf("empty key: want BadRequest, got %v", err)
	}
	dir := t.TempDir()
	inodes := map[uint64]bool{}
	for i := 0; i < 4; i++ {
		if i > 0 {
			// Let the refill catch up, so later sandboxes come from the pool.
			deadline := time.Now().Add(5 * time.Second)
			for len(p.ready) == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if len(p.ready) == 0 {
				t.Fatal("the pool did not refill")
			}
		}
		key := filepath.Join(dir, "netns", string(rune('a'+i)))
		s, err := p.New(key)
		if err != nil {
			t.Fatal(err)
		}
		if s.Key() != key || !isMounted(t, key) {
			t.Fatalf("sandbox %d: key %q, mounted %v", i, s.Key(), isMounted(t, key))
		}
		var st syscall.Stat_t
		if err := syscall.Stat(key, &st); err != nil {
			t.Fatal(err)
		}
		if inodes[st.Ino] {
			t.Fatalf("sandbox %d shares a namespace with an earlier one", i)
		}
		inodes[st.Ino] = true
		lo, err := s.Netlink().LinkByName("lo")
		if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
			t.Fatalf("sandbox %d: lo %v, %v", i, lo, err)
		}
		if v := readSysctl(t, s, "net/ipv6/conf/all/disable_ipv6"); v != "1" {
			t.Errorf("sandbox %d: all.disable_ipv6 = %s, want 1", i, v)
		}
		t.Cleanup(func() { _ = s.Destroy() })
	}
	p.Close()
	if len(p.ready) != 0 {
		t.Fatalf("%d sandboxes still held after Close", len(p.ready))
	}
	key := filepath.Join(dir, "netns", "after-close")
	s, err := p.New(key)
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Fatalf("key left after Destroy: %v", err)
	}
}
