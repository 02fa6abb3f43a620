// Package iptables runs iptables inside a given network namespace. It
// implements firewall.Runner.
//
// Two paths, by what each costs under iptables-nft:
//   - Single commands go through github.com/coreos/go-iptables: finding the
//     binaries, the version (which decides --wait, also for the restore
//     path), and listing one chain (ListChain). One go-iptables object per
//     family is made on first use, once: making it execs `iptables
//     --version`.
//   - Batches stay on iptables-restore --noflush (Restore), which go-iptables
//     does not have: one restore of 200 rules costs what ~4 single execs do.
//     Whole tables are read with one `iptables -S` (List): go-iptables lists
//     one chain per exec, and iptables-nft fetches the whole table for each
//     of them (16 ms per chain with 2,000 ports published, measured), so a
//     table read chain by chain would cost that many times more.
package iptables

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	goipt "github.com/coreos/go-iptables/iptables"
	"github.com/google/nftables"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// Exec runs iptables, ip6tables and their -restore variants inside one
// namespace. The binaries are forked from a thread that NS.Do switched into
// the namespace, and a child inherits its parent thread's namespace, so no
// re-exec or nsenter is needed (go-iptables' commands included: it forks
// from the calling thread).
type Exec struct {
	ns   *netnsutil.NS
	warm *warmPool // nil: every call execs cold (see NewWarm)
	fams [2]family // by famIndex

	children recentPIDs // the processes it forked lately (see Forked)
	// suffix picks the binaries: "" runs iptables and ip6tables (whatever
	// the system's alternatives point at), "-legacy" the -legacy ones.
	suffix string
}

// Option changes how a runner from New or NewWarm picks its binaries.
type Option func(*Exec)

// LegacyBinaries makes the runner exec iptables-legacy, ip6tables-legacy
// and their -restore variants (Debian's iptables package ships both
// kinds) instead of what "iptables" resolves to.
func LegacyBinaries() Option { return func(e *Exec) { e.suffix = "-legacy" } }

// family is the go-iptables object of one family, made once.
type family struct {
	once sync.Once
	ipt  *goipt.IPTables
	err  error
	wait bool // iptables-restore takes --wait (1.6.2 and later)
	// legacy: the binary drives the legacy x_tables (its --version says
	// "(legacy)", or nothing, before 1.8), which no nftables event
	// reports a change of.
	legacy bool
}

var _ firewall.Runner = (*Exec)(nil)

// New returns a runner for the namespace ns (which must stay open while the
// runner is used).
func New(ns *netnsutil.NS, opts ...Option) *Exec {
	e := &Exec{ns: ns}
	for _, o := range opts {
		o(e)
	}
	return e
}

func famIndex(fam firewall.Family) int {
	if fam == firewall.IPv6 {
		return 1
	}
	return 0
}

// family returns fam's go-iptables object, making it on first use.
func (e *Exec) family(fam firewall.Family) (*family, error) {
	f := &e.fams[famIndex(fam)]
	f.once.Do(func() {
		proto := goipt.ProtocolIPv4
		if fam == firewall.IPv6 {
			proto = goipt.ProtocolIPv6
		}
		bin := e.binary(fam, false)
		f.err = e.ns.Do(func() error {
			var err error
			f.ipt, err = goipt.New(goipt.IPFamily(proto), goipt.Path(bin))
			return err
		})
		if f.err != nil {
			f.err = types.InternalErrorf("finding %s in %s: %w", bin, e.ns.Path(), f.err)
			return
		}
		v1, v2, v3 := f.ipt.GetIptablesVersion()
		f.wait = v1 > 1 || v1 == 1 && (v2 > 6 || v2 == 6 && v3 >= 2)
		// go-iptables reads the mode but does not tell it.
		out, err := e.run(bin, "", "--version")
		if err != nil {
			f.err = types.InternalErrorf("asking %s in %s for its version: %w: %s", bin, e.ns.Path(), err, strings.TrimSpace(out))
			return
		}
		f.legacy = !strings.Contains(out, "(nf_tables)")
	})
	return f, f.err
}

// Legacy reports whether the IPv4 binary the runner execs drives the
// legacy x_tables rather than nftables: changes to its rules then raise
// no nftables event.
func (e *Exec) Legacy() (bool, error) {
	f, err := e.family(firewall.IPv4)
	if err != nil {
		return false, err
	}
	return f.legacy, nil
}

func (e *Exec) binary(fam firewall.Family, restore bool) string {
	b := "iptables"
	if fam == firewall.IPv6 {
		b = "ip6tables"
	}
	b += e.suffix
	if restore {
		b += "-restore"
	}
	return b
}

// restoreArgs are the arguments of every iptables-restore.
func (e *Exec) restoreArgs(fam firewall.Family) ([]string, error) {
	f, err := e.family(fam)
	if err != nil {
		return nil, err
	}
	if f.wait {
		return []string{"--noflush", "--wait"}, nil
	}
	return []string{"--noflush"}, nil
}

// Restore runs `iptables-restore --noflush [--wait]` with script on stdin.
func (e *Exec) Restore(fam firewall.Family, script string) error {
	bin := e.binary(fam, true)
	args, err := e.restoreArgs(fam)
	if err != nil {
		return err
	}
	var out string
	ok := false
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

// List runs `iptables -t table -S [--wait]`: the whole table in one exec.
func (e *Exec) List(fam firewall.Family, table string) (string, error) {
	f, err := e.family(fam)
	if err != nil {
		return "", err
	}
	args := []string{"-t", table, "-S"}
	if f.wait {
		args = append(args, "--wait")
	}
	bin := e.binary(fam, false)
	out, err := e.run(bin, "", args...)
	if err != nil {
		return "", types.InternalErrorf("listing %s table %s in %s: %w: %s", bin, table, e.ns.Path(), err, strings.TrimSpace(out))
	}
	return out, nil
}

// ListChain returns `iptables -t table -S chain` through go-iptables, or
// "" when the chain does not exist. Under iptables-nft this costs about
// what List of the whole table does.
func (e *Exec) ListChain(fam firewall.Family, table, chain string) (string, error) {
	f, err := e.family(fam)
	if err != nil {
		return "", err
	}
	var lines []string
	err = e.ns.Do(func() error {
		var lerr error
		lines, lerr = f.ipt.List(table, chain)
		return lerr
	})
	// iptables-nft 1.8.9 answers a missing chain with exit status 1 and
	// "chain `X' in table `t' is incompatible, use 'nft' tool", which
	// IsNotExist does not recognise. Status 1 is also a general failure,
	// so the wording decides: anything else is a real error, not an
	// empty chain that recovery would then trust. The same words also
	// mean a chain that exists but holds a rule an nft-native tool wrote,
	// which the kernel tells apart.
	var ierr *goipt.Error
	if errors.As(err, &ierr) && ierr.IsNotExist() {
		return "", nil
	}
	if errors.As(err, &ierr) && ierr.ExitStatus() == 1 && strings.Contains(ierr.Error(), "chain `"+chain+"' in table `"+table+"' is incompatible") {
		exists, nerr := e.nftHasChain(fam, table, chain)
		if nerr != nil {
			return "", types.InternalErrorf("listing %s chain %s %s in %s: %w (and asking nftables: %w)", e.binary(fam, false), table, chain, e.ns.Path(), err, nerr)
		}
		if !exists {
			return "", nil
		}
		return "", types.InternalErrorf("%s chain %s %s in %s holds rules iptables cannot read (written with nft?): %w", e.binary(fam, false), table, chain, e.ns.Path(), err)
	}
	if err != nil {
		return "", types.InternalErrorf("listing %s chain %s %s in %s: %w", e.binary(fam, false), table, chain, e.ns.Path(), err)
	}
	if len(lines) == 0 {
		return "", nil
	}
	return strings.Join(lines, "\n") + "\n", nil
}

// nftHasChain asks the kernel whether iptables-nft's table holds chain.
func (e *Exec) nftHasChain(fam firewall.Family, table, chain string) (bool, error) {
	nfam := nftables.TableFamilyIPv4
	if fam == firewall.IPv6 {
		nfam = nftables.TableFamilyIPv6
	}
	var c *nftables.Conn
	if err := e.ns.Do(func() error {
		var err error
		c, err = nftables.New(nftables.AsLasting()) // a socket stays in the namespace it was made in
		return err
	}); err != nil {
		return false, err
	}
	defer c.CloseLasting()
	chains, err := c.ListChainsOfTableFamily(nfam)
	if err != nil {
		return false, err
	}
	for _, ch := range chains {
		if ch.Table.Name == table && ch.Name == chain {
			return true, nil
		}
	}
	return false, nil
}

// diesWithUs makes a child get SIGKILL when we die. Without it an
// iptables-restore we started goes on after a crash and may commit its
// script after the restarted process has read the rules and taken them
// over, which then disagree with the kernel (the crash test saw published
// ports left without their DNAT rules). Killed, it has either committed
// before we died (the restart reads the result) or never will: each
// table's transaction is atomic (a multi-table script may be cut between
// tables, which Setup's reading of whole tables copes with). The signal is tied to the forking thread, which
// NS.Do keeps alive (it discards a thread only when it cannot switch it
// back, and then a warm process dies idle and is replaced cold).
func diesWithUs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func (e *Exec) run(bin, stdin string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := e.ns.Do(func() error {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = diesWithUs()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		// The script goes in only once the process is noted (Forked): a
		// restore cannot commit before its change is known to be ours.
		var in io.WriteCloser
		if stdin != "" {
			var err error
			if in, err = cmd.StdinPipe(); err != nil {
				return err
			}
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		e.children.note(cmd.Process.Pid)
		if in != nil {
			_, werr := io.WriteString(in, stdin)
			cerr := in.Close()
			if err := cmd.Wait(); err != nil {
				return err
			}
			return errors.Join(werr, cerr)
		}
		return cmd.Wait()
	})
	if err != nil {
		return stderr.String(), fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// Forked reports whether pid is one of the processes this runner started
// lately: a change an nftables event attributes to it is ours.
func (e *Exec) Forked(pid int) bool { return e.children.has(pid) }

// recentPIDs remembers the last few process ids started. Few are ever
// running at once (one restore, one warm spare per binary), so a small
// ring is enough to recognise the author of an event read a little later.
type recentPIDs struct {
	mu   sync.Mutex
	pids [32]int
	next int
}

func (r *recentPIDs) note(pid int) {
	r.mu.Lock()
	r.pids[r.next%len(r.pids)] = pid
	r.next++
	r.mu.Unlock()
}

func (r *recentPIDs) has(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pids {
		if p == pid && pid > 0 {
			return true
		}
	}
	return false
}
