package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/internal/testutil"
)

// The test binary doubles as the example: re-executed with this variable
// set it runs main instead of the tests.
const runExample = "OPENCNM_README_EXAMPLE_RUN"

func TestMain(m *testing.M) {
	if os.Getenv(runExample) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The README's example, as `make example` runs it, works twice in a row.
// It runs in a private network and mount namespace whose /run and
// /var/lib are fresh tmpfs, so nothing of the machine's is seen or left.
func TestReadmeExampleTwice(t *testing.T) {
	testutil.RequireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
ip link set lo up
"$0"
"$0"
test -d /run/libnetwork/netns && ! ls -A /run/libnetwork/netns | grep -q .
`
	cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script, exe)
	cmd.Env = append(os.Environ(), runExample+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README example: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "Joined endpoint Endpoint1"); n != 2 {
		t.Fatalf("README example joined %d times, want 2:\n%s", n, out)
	}
}
