package libnetwork_test

import (
	"errors"
	"net"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

func TestSandboxRegistry(t *testing.T) {
	c := testrig.NewUnitController(t)
	if _, err := c.NewSandbox(""); !types.IsBadRequest(err) {
		t.Fatalf("empty container ID: want BadRequest, got %v", err)
	}
	sb := testrig.ExtSandbox(t, c, "c1")
	if _, err := c.NewSandbox("c1", libnetwork.OptionUseExternalKey()); !types.IsForbidden(err) {
		t.Fatalf("second sandbox for c1: want Forbidden, got %v", err)
	}
	if sb.ContainerID() != "c1" || len(sb.ID()) != 64 {
		t.Fatalf("accessors: %q %q", sb.ContainerID(), sb.ID())
	}
	if got, err := c.SandboxByID(sb.ID()); err != nil || got != sb {
		t.Fatalf("SandboxByID: %v %v", got, err)
	}
	if _, err := c.SandboxByID(""); !types.IsBadRequest(err) {
		t.Fatalf("SandboxByID(\"\"): %v", err)
	}
	if _, err := c.SandboxByID("x"); !types.IsNotFound(err) {
		t.Fatalf("SandboxByID(miss): %v", err)
	}
	var found *libnetwork.Sandbox
	c.WalkSandboxes(libnetwork.SandboxContainerWalker(&found, "c1"))
	if found != sb {
		t.Fatal("SandboxContainerWalker did not find c1")
	}
	found = nil
	c.WalkSandboxes(libnetwork.SandboxKeyWalker(&found, sb.Key()))
	if found != sb {
		t.Fatal("SandboxKeyWalker did not find the key")
	}
	if err := c.SandboxDestroy("c1"); err != nil {
		t.Fatal(err)
	}
	if err := c.SandboxDestroy("c1"); err != nil {
		t.Fatalf("SandboxDestroy of a missing container: %v", err)
	}
	if err := sb.Delete(); err != nil {
		t.Fatalf("Delete of a deleted sandbox: %v", err)
	}
	if len(c.Sandboxes()) != 0 {
		t.Fatal("sandbox still listed")
	}
}

func TestJoinLeaveRules(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "n")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
	sb1 := testrig.ExtSandbox(t, c, "c1")
	sb2 := testrig.ExtSandbox(t, c, "c2")

	var inv libnetwork.ErrInvalidJoin
	if err := ep.Join(nil); !errors.As(err, &inv) || !types.IsBadRequest(err) {
		t.Fatalf("Join(nil): want ErrInvalidJoin, got %v", err)
	}
	if err := ep.Leave(sb1); !types.IsForbidden(err) {
		t.Fatalf("Leave before join: want Forbidden, got %v", err)
	}
	if err := ep.Join(sb1); err != nil {
		t.Fatal(err)
	}
	if err := ep.Join(sb2); !types.IsForbidden(err) {
		t.Fatalf("second join: want Forbidden, got %v", err)
	}
	if err := ep.Join(sb1); !types.IsForbidden(err) {
		t.Fatalf("same join twice: want Forbidden, got %v", err)
	}
	if got := ep.Info().Sandbox(); got != sb1 {
		t.Fatalf("Info().Sandbox() = %v", got)
	}
	if err := ep.Leave(sb2); !types.IsForbidden(err) {
		t.Fatalf("Leave of another sandbox: want Forbidden, got %v", err)
	}
	var active *libnetwork.ActiveContainerError
	if err := ep.Delete(false); !errors.As(err, &active) || !types.IsForbidden(err) {
		t.Fatalf("Delete of a joined endpoint: want ActiveContainerError, got %v", err)
	}
	if err := ep.Leave(sb1); err != nil {
		t.Fatal(err)
	}
	if ep.Info().Sandbox() != nil || ep.Info().Gateway() != nil {
		t.Fatal("endpoint still looks joined after Leave")
	}
	if err := ep.Join(sb2); err != nil {
		t.Fatalf("join after leave: %v", err)
	}
	if err := ep.Delete(true); err != nil {
		t.Fatalf("forced delete: %v", err)
	}
	if len(sb2.Endpoints()) != 0 {
		t.Fatal("forced delete left the endpoint in the sandbox")
	}
}

func TestGatewayFollowsPriority(t *testing.T) {
	c := testrig.NewUnitController(t)
	f := testrig.WithFake(t, c)
	f.Gateway = net.ParseIP("10.47.0.1")
	a := testrig.FakeNet(t, c, "a")
	b := testrig.FakeNet(t, c, "b")
	epA := testrig.Must[*libnetwork.Endpoint](t)(a.CreateEndpoint("epA"))
	epB := testrig.Must[*libnetwork.Endpoint](t)(b.CreateEndpoint("epB"))
	sb := testrig.ExtSandbox(t, c, "c")

	if err := epB.Join(sb); err != nil {
		t.Fatal(err)
	}
	if err := epA.Join(sb, libnetwork.JoinOptionPriority(10)); err != nil {
		t.Fatal(err)
	}
	if eps := sb.Endpoints(); len(eps) != 2 || eps[0] != epA {
		t.Fatalf("order = %v, want epA first (higher priority)", eps)
	}
	// Exactly one endpoint carries the sandbox's external connectivity.
	if _, _, joins, ext := f.Counts(); joins != 2 || ext != 1 {
		t.Fatalf("joins=%d external=%d", joins, ext)
	}
	if err := epA.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if _, _, joins, ext := f.Counts(); joins != 1 || ext != 1 {
		t.Fatalf("after leave: joins=%d external=%d, want the gateway moved to epB", joins, ext)
	}
	if err := sb.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, eps, joins, ext := f.Counts(); eps != 1 || joins != 0 || ext != 0 {
		t.Fatalf("after sandbox delete: %s (epA remains, epB deleted with the sandbox)", f)
	}
}

func TestJoinRollbackOnExternalConnectivityFailure(t *testing.T) {
	c := testrig.NewUnitController(t)
	f := testrig.WithFake(t, c)
	f.Gateway = net.ParseIP("10.48.0.1")
	n := testrig.FakeNet(t, c, "n")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
	sb := testrig.ExtSandbox(t, c, "c")
	f.Fail("ProgramExternalConnectivity", types.InternalErrorf("injected"))
	if err := ep.Join(sb); err == nil {
		t.Fatal("join succeeded despite the failure")
	}
	if _, _, joins, ext := f.Counts(); joins != 0 || ext != 0 || len(sb.Endpoints()) != 0 || ep.Info().Sandbox() != nil {
		t.Fatalf("failed join left state: %s", f)
	}
	f.Fail("ProgramExternalConnectivity", nil)
	if err := ep.Join(sb); err != nil {
		t.Fatalf("join after the failure cleared: %v", err)
	}
}
