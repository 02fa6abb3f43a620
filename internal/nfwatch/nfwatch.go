// Package nfwatch tells when another process removed something from the
// nftables ruleset of one network namespace, so the firewall can put its
// own rules back at once instead of at the next periodic check.
//
// It listens on the kernel's NFNLGRP_NFTABLES multicast group: every
// committed nftables transaction is announced as one message per object
// changed followed by a NEWGEN message carrying the committing task's id.
// iptables-nft writes through nftables, so `iptables -F` is seen as well
// as `nft flush ruleset`; iptables-legacy is not (the caller keeps a
// periodic check for it).
//
// Only transactions that deleted something and were committed by another
// process count: ours (this process's threads, and the iptables-restore
// children the caller names) only do what the firewall's record already
// says, and additions by anyone never take our rules away. A lost notification (the
// socket's buffer overran: ENOBUFS) counts as a change, since what it said
// is unknown.
package nfwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// nfnetlink message types of the nftables subsystem (linux/netfilter/
// nf_tables.h); the header's type is subsystem<<8 | message.
const (
	subsysNFTables = 10
	msgNewGen      = 15
	attrGenProcPID = 2 // NFTA_GEN_PROC_PID, a big-endian u32
	groupNFTables  = 7 // NFNLGRP_NFTABLES
	nfgenmsgLen    = 4
)

// deleting reports whether an nftables message announces a removal:
// DEL{TABLE,CHAIN,RULE,SET,SETELEM,OBJ,FLOWTABLE} and their DESTROY forms.
func deleting(msg uint16) bool {
	switch msg {
	case 2, 5, 8, 11, 14, 20, 24: // NFT_MSG_DEL*
		return true
	}
	return msg >= 26 && msg <= 32 // NFT_MSG_DESTROY*
}

// rcvBuf is the socket's receive buffer: a firewall manager's reload
// announces every rule it flushes; past this the kernel drops messages
// and the next read says ENOBUFS.
const rcvBuf = 4 << 20

// Watcher reports foreign removals in one namespace on C. It is safe for
// concurrent use.
type Watcher struct {
	f      *os.File
	ch     chan struct{}
	done   chan struct{}
	self   int
	forked func(pid int) bool
	isOurs func(tid int) bool

	changes  atomic.Uint64 // foreign removing transactions seen
	overruns atomic.Uint64 // ENOBUFS seen
	pending  bool          // a removal seen since the last NEWGEN; reader only

	closeOnce sync.Once
}

// Open subscribes to ns's nftables events. forked, when not nil, tells
// the processes this one started to change the ruleset on its behalf
// (their transactions are ours).
func Open(ns *netnsutil.NS, forked func(pid int) bool) (*Watcher, error) {
	return open(ns, forked, rcvBuf, true)
}

func open(ns *netnsutil.NS, forked func(pid int) bool, buf int, start bool) (*Watcher, error) {
	var fd int
	err := ns.Do(func() error { // a socket belongs to the namespace it was made in
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening nftables event socket in %s: %w", ns.Path(), err)
	}
	fail := func(what string, err error) (*Watcher, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s on nftables event socket in %s: %w", what, ns.Path(), err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail("binding", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, groupNFTables); err != nil {
		return fail("joining the nftables group", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, buf); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, buf); err != nil {
			return fail("sizing the buffer", err)
		}
	}
	w := &Watcher{
		f:      os.NewFile(uintptr(fd), "nftables-events"), // non-blocking: reads go through the poller, Close wakes them
		ch:     make(chan struct{}, 1),
		done:   make(chan struct{}),
		self:   os.Getpid(),
		forked: forked,
	}
	w.isOurs = w.ours
	if start {
		go w.loop()
	}
	return w, nil
}

// C receives a value after one or more foreign removals or an overrun;
// several before it is read make one value (the reader checks once).
func (w *Watcher) C() <-chan struct{} { return w.ch }

// Changes counts the foreign removing transactions seen so far.
func (w *Watcher) Changes() uint64 { return w.changes.Load() }

// Overruns counts the times notifications were lost.
func (w *Watcher) Overruns() uint64 { return w.overruns.Load() }

// Close stops listening and waits for the reader to end.
func (w *Watcher) Close() error {
	var err error
	w.closeOnce.Do(func() {
		err = w.f.Close()
		<-w.done
	})
	return err
}

func (w *Watcher) signal() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

func (w *Watcher) loop() {
	defer close(w.done)
	buf := make([]byte, 1<<16)
	for {
		n, err := w.f.Read(buf)
		if errors.Is(err, unix.ENOBUFS) {
			w.overrun()
			continue
		}
		if err != nil {
			return // closed, or the socket broke: the caller's periodic check remains
		}
		w.handle(buf[:n])
	}
}

// overrun: notifications were dropped, so whatever they said is unknown.
func (w *Watcher) overrun() {
	w.overruns.Add(1)
	w.pending = false
	w.signal()
}

// handle parses one datagram of notifications.
func (w *Watcher) handle(b []byte) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		w.overrun() // unreadable: as good as lost
		return
	}
	for _, m := range msgs {
		if m.Header.Type>>8 != subsysNFTables {
			continue
		}
		msg := m.Header.Type & 0xff
		if deleting(msg) {
			w.pending = true
			continue
		}
		if msg != msgNewGen {
			continue
		}
		removed := w.pending
		w.pending = false
		if removed && !w.isOurs(genPID(m.Data)) {
			w.changes.Add(1)
			w.signal()
		}
	}
}

// genPID reads NFTA_GEN_PROC_PID from a NEWGEN message's payload; 0 when
// absent.
func genPID(data []byte) int {
	if len(data) < nfgenmsgLen {
		return 0
	}
	b := data[nfgenmsgLen:]
	for len(b) >= 4 {
		l := int(binary.LittleEndian.Uint16(b[0:2]))
		typ := binary.LittleEndian.Uint16(b[2:4]) & 0x3fff
		if l < 4 || l > len(b) {
			return 0
		}
		if typ == attrGenProcPID && l >= 8 {
			return int(binary.BigEndian.Uint32(b[4:8]))
		}
		step := (l + 3) &^ 3
		if step > len(b) {
			return 0
		}
		b = b[step:]
	}
	return 0
}

// ours reports whether the task tid is a thread of this process or one
// the caller says is its own (the runner's iptables-restore children).
// Other children of this process are not ours: a tool the embedding
// program runs is as foreign as any.
func (w *Watcher) ours(tid int) bool {
	if tid <= 0 {
		return false
	}
	if tid == w.self || w.forked != nil && w.forked(tid) {
		return true
	}
	_, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid))
	return err == nil
}
