package etcdproc

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A member serves on its unix socket, dies by Kill and comes back on the
// same data directory.
func TestKillRestart(t *testing.T) {
	t.Parallel()
	m := StartT(t, Options{})
	path, ok := strings.CutPrefix(m.Endpoint(), "unix://")
	if !ok {
		t.Fatalf("endpoint %s is not a unix socket", m.Endpoint())
	}
	dial := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("a started member does not accept: %v", err)
	}
	m.Kill()
	if err := dial(); err == nil {
		t.Fatal("a killed member still accepts")
	}
	if err := m.Start(); err != nil {
		t.Fatalf("restart on the same data dir: %v", err)
	}
	if err := dial(); err != nil {
		t.Fatalf("a restarted member does not accept: %v", err)
	}
}
