package portmapper_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/types"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A release the background worker cannot finish is logged with the
// endpoints it concerns and the error (nobody else waits for it).
func TestReleaseFailureIsLogged(t *testing.T) {
	r := newRig(t)
	var out lockedBuffer
	r.pm.SetLogger(slog.New(slog.NewTextHandler(&out, nil)))
	t.Cleanup(func() { r.ipt.FailLine(nil); _ = r.pm.Close() })
	if _, err := r.pm.MapPorts(ep1, []types.PortBinding{{Proto: types.SCTP, Port: 9, HostPort: 9999}}); err != nil {
		t.Fatal(err)
	}
	r.ipt.FailLine(func(_ firewall.Family, line string) error {
		if strings.HasPrefix(line, "-D ") {
			return errors.New("injected")
		}
		return nil
	})
	if err := r.pm.Release("ep1"); err != nil {
		t.Fatal(err)
	}
	if err := r.pm.Flush(); err == nil {
		t.Fatal("Flush after a failed release reported no error")
	}
	want := `level=WARN msg="releasing published ports failed; they stay held" endpoints=[ep1] err=`
	if got := out.String(); !strings.Contains(got, want) {
		t.Errorf("log lacks %q:\n%s", want, got)
	}
}

// A conntrack flush that fails after a release is logged with the
// endpoints and the error, and only logged: the ports are released all
// the same (the flush only clears stale flows), so Flush reports nothing
// and the host port can be published again.
func TestConntrackFlushFailureIsLogged(t *testing.T) {
	r := newRig(t)
	var out lockedBuffer
	r.pm.SetLogger(slog.New(slog.NewTextHandler(&out, nil)))
	t.Cleanup(func() { r.ct.failWith(nil); _ = r.pm.Close() })
	udp := []types.PortBinding{{Proto: types.UDP, Port: 53, HostPort: 5353}}
	if _, err := r.pm.MapPorts(ep1, udp); err != nil {
		t.Fatal(err)
	}
	r.ct.failWith(errors.New("injected"))
	if err := r.pm.Release("ep1"); err != nil {
		t.Fatal(err)
	}
	if err := r.pm.Flush(); err != nil {
		t.Fatalf("Flush after a failed conntrack flush: %v", err)
	}
	want := `level=WARN msg="flushing conntrack entries of released ports failed" endpoints=[ep1] err=`
	if got := out.String(); !strings.Contains(got, want) || !strings.Contains(got, "injected") {
		t.Errorf("log lacks %q with the error:\n%s", want, got)
	}
	if strings.Contains(out.String(), "releasing published ports failed") {
		t.Errorf("the release itself was logged as failed:\n%s", out.String())
	}
	r.ct.failWith(nil)
	if _, err := r.pm.MapPorts(ep1, udp); err != nil {
		t.Errorf("publishing the released port again: %v", err)
	}
}
