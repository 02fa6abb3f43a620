package libnetwork_test

import (
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"

	"github.com/opencnm/libnetwork/internal/testutil"
)

// runExamplesEnv set to 1 makes TestExamplesRun run the examples in the
// process it is in; the parent sets it for the child it starts in a
// throwaway namespace.
const runExamplesEnv = "OPENCNM_RUN_EXAMPLES"

// The examples need root and use the namespace and paths they run in
// (the machine's own, for a caller), so go test only compiles them. This
// runs each, twice (what one makes, it removes), in a private network and
// mount namespace whose /run and /var/lib are fresh tmpfs, and checks what
// each prints and that no link is left behind.
func TestExamplesRun(t *testing.T) {
	if os.Getenv(runExamplesEnv) == "1" {
		runExamplesHere(t)
		return
	}
	testutil.RequireRoot(t)
	// The child shares nothing with the other tests (its own namespaces,
	// its own /run and /var/lib), so it runs beside them.
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
ip link set lo up
exec "$0" -test.run '^TestExamplesRun$' -test.count 1 -test.v
`
	cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script, exe)
	cmd.Env = append(os.Environ(), runExamplesEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("examples: %v\n%s", err, out)
	}
}

var examples = []struct {
	name string
	run  func()
	want string // a regexp the output matches
}{
	{"ExampleNew", ExampleNew, `(?m)^no network web yet: .*\ndrivers: \[.*bridge.*\]$`},
	{"ExampleController_NewNetwork", ExampleController_NewNetwork,
		`(?m)^web1 tcp/80 is published on host port [1-9][0-9]*\nweb1 has address 172\.30\.0\.\d+/24 and key /run/libnetwork/netns/\w+$`},
	{"ExampleSandbox_SetKey", ExampleSandbox_SetKey, `(?m)^job1's interfaces: \[(lo eth0|eth0 lo)\] with 172\.31\.0\.\d+/24$`},
	{"ExampleController_NewNetwork_plugin", ExampleController_NewNetwork_plugin,
		`(?m)^db on p2p with 172\.29\.0\.\d+/24 host end p2p\w{8}$`},
}

func runExamplesHere(t *testing.T) {
	for round := 1; round <= 2; round++ {
		for _, ex := range examples {
			out := captureStdout(t, ex.run)
			t.Logf("%s:\n%s", ex.name, out)
			if !regexp.MustCompile(ex.want).MatchString(out) {
				t.Errorf("%s (round %d) printed\n%s\nwant a match of %s", ex.name, round, out, ex.want)
			}
			ifs, err := net.Interfaces()
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, i := range ifs {
				names = append(names, i.Name)
			}
			if !slices.Equal(names, []string{"lo"}) {
				t.Errorf("after %s (round %d) the namespace has links %v", ex.name, round, names)
			}
		}
	}
}

// captureStdout returns what f writes to os.Stdout.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()
	defer func() { os.Stdout = saved }()
	f()
	w.Close()
	return <-got
}
