package testrig

import (
	"testing"

	"github.com/opencnm/libnetwork"
)

// External-key sandboxes have no namespace until SetKey, so the bookkeeping
// of joins and leaves is testable without the kernel.
func ExtSandbox(t *testing.T, c *libnetwork.Controller, cid string, opts ...libnetwork.SandboxOption) *libnetwork.Sandbox {
	t.Helper()
	return Must[*libnetwork.Sandbox](t)(c.NewSandbox(cid, append(opts, libnetwork.OptionUseExternalKey())...))
}
