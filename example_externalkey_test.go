package libnetwork_test

import (
	"bufio"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/opencnm/libnetwork"
)

// An OCI runtime (runc, crun) makes the container's network namespace
// itself, when it starts the container's init. The engine makes the
// sandbox first with OptionUseExternalKey and joins its endpoints (their
// interfaces wait in the host namespace); the runtime's prestart hook then
// hands the namespace over with SetKey, which moves them in. It needs root.
func ExampleSandbox_SetKey() {
	if err := runJob(); err != nil {
		log.Fatal(err)
	}
}

func runJob() (err error) {
	c, err := libnetwork.New()
	if err != nil {
		return err
	}
	defer c.Stop()
	nw, err := c.NewNetwork("bridge", "jobs", "",
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "172.31.0.0/24"}}, nil, nil))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nw.Delete()) }()

	ep, err := nw.CreateEndpoint("job1")
	if err != nil {
		return err
	}
	sb, err := c.NewSandbox("job1", libnetwork.OptionUseExternalKey(), libnetwork.OptionHostname("job1"))
	if err != nil {
		return errors.Join(err, ep.Delete(false))
	}
	defer func() { err = errors.Join(err, sb.Delete()) }()
	if err := ep.Join(sb); err != nil {
		return errors.Join(err, ep.Delete(false))
	}

	// The runtime's part: the container's init, in a namespace of its own.
	init := exec.Command("sleep", "60")
	init.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := init.Start(); err != nil {
		return err
	}
	defer func() { _ = init.Process.Kill(); _ = init.Wait() }()
	// The prestart hook's part: it gets the init's PID in the OCI state.
	netnsPath := fmt.Sprintf("/proc/%d/ns/net", init.Process.Pid)
	if err := sb.SetKey(netnsPath); err != nil {
		return err
	}

	links, err := interfacesOf(init.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Println("job1's interfaces:", links, "with", ep.Info().Iface().Address())
	return nil
}

// interfacesOf lists the interfaces in the network namespace of process pid.
func interfacesOf(pid int) ([]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, _, ok := strings.Cut(sc.Text(), ":"); ok {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names, sc.Err()
}
