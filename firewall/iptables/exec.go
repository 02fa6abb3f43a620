// Package iptables runs the iptables binaries inside a given network
// namespace. It implements firewall.Runner.
package iptables

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// Exec runs iptables, ip6tables and their -restore variants inside one
// namespace. The binaries are forked from a thread that NS.Do switched into
// the namespace, and a child inherits its parent thread's namespace, so no
// re-exec or nsenter is needed.
type Exec struct {
	ns   *netnsutil.NS
	warm *warmPool // nil: every call execs cold (see NewWarm)
}

var _ firewall.Runner = (*Exec)(nil)

// New returns a runner for the namespace ns (which must stay open while the
// runner is used).
func New(ns *netnsutil.NS) *Exec { return &Exec{ns: ns} }

func binary(fam firewall.Family, restore bool) string {
	b := "iptables"
	if fam == firewall.IPv6 {
		b = "ip6tables"
	}
	if restore {
		b += "-restore"
	}
	return b
}

// Restore runs `iptables-restore --noflush --wait` with script on stdin.
func (e *Exec) Restore(fam firewall.Family, script string) error {
	bin := binary(fam, true)
	args := []string{"--noflush", "--wait"}
	var out string
	ok, err := false, error(nil)
	if e.warm != nil {
		out, ok, err = e.runWarm(bin, script, args)
		if err != nil {
			err = fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
		}
	}
	if !ok {
		out, err = e.run(bin, script, args...)
	}
	if err != nil {
		return types.InternalErrorf("running %s in %s: %w: %s", bin, e.ns.Path(), err, strings.TrimSpace(out))
	}
	return nil
}

// List runs `iptables -t table -S --wait`.
func (e *Exec) List(fam firewall.Family, table string) (string, error) {
	bin := binary(fam, false)
	out, err := e.run(bin, "", "--wait", "-t", table, "-S")
	if err != nil {
		return "", types.InternalErrorf("listing %s table %s in %s: %w: %s", bin, table, e.ns.Path(), err, strings.TrimSpace(out))
	}
	return out, nil
}

func (e *Exec) run(bin, stdin string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := e.ns.Do(func() error {
		cmd := exec.Command(bin, args...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return cmd.Run()
	})
	if err != nil {
		return stderr.String(), fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}
