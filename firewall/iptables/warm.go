package iptables

import (
	"bytes"
	"io"
	"os/exec"
	"sync"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// NewWarm returns a runner for ns that keeps one iptables-restore (and
// ip6tables-restore once used) already started and blocked on its empty
// stdin, so a Restore only pays for feeding the script and the kernel
// transaction, not for exec and the dynamic loader: about 1-1.5 ms of the
// ~3 ms a cold iptables-nft restore costs. The next process is started in
// the background right after one is used. Close stops the idle ones.
func NewWarm(ns *netnsutil.NS, opts ...Option) *Exec {
	e := New(ns, opts...)
	e.warm = &warmPool{idle: map[string]*warmProc{}}
	return e
}

// warmPool holds at most one started, unused process per binary.
type warmPool struct {
	mu     sync.Mutex
	idle   map[string]*warmProc // guarded by mu
	closed bool                 // guarded by mu
	wg     sync.WaitGroup       // background refills
}

type warmProc struct {
	stdin          io.WriteCloser
	stdout, stderr bytes.Buffer
	exited         chan struct{} // closed once the process has been waited for
	err            error         // Wait's result, valid after exited
}

// spawn starts bin with args inside the namespace, reading its script
// from a pipe. A child inherits the namespace of the thread that forks it.
func (e *Exec) spawn(bin string, args []string) (*warmProc, error) {
	p := &warmProc{exited: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = diesWithUs()
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p.stdin = stdin
	if err := e.ns.Do(cmd.Start); err != nil {
		stdin.Close()
		return nil, err
	}
	e.children.note(cmd.Process.Pid)
	go func() { // ends when the process does; Close makes sure it does
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// take returns the idle process for bin, or nil when there is none (or it
// died while idle), and schedules its replacement.
func (e *Exec) take(bin string, args []string) *warmProc {
	w := e.warm
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	p := w.idle[bin]
	delete(w.idle, bin)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		next, err := e.spawn(bin, args)
		if err != nil {
			return // the next Restore runs cold
		}
		w.mu.Lock()
		if w.closed || w.idle[bin] != nil {
			w.mu.Unlock()
			next.stdin.Close() // an empty script changes nothing
			<-next.exited
			return
		}
		w.idle[bin] = next
		w.mu.Unlock()
	}()
	if p != nil {
		select {
		case <-p.exited:
			return nil
		default:
		}
	}
	return p
}

// runWarm feeds stdin to a prestarted process. ok is false when there was
// none usable and the caller must run the binary itself.
func (e *Exec) runWarm(bin, stdin string, args []string) (out string, ok bool, err error) {
	p := e.take(bin, args)
	if p == nil {
		return "", false, nil
	}
	_, werr := io.WriteString(p.stdin, stdin)
	cerr := p.stdin.Close()
	<-p.exited
	if (werr != nil || cerr != nil) && p.err != nil && p.stderr.Len() == 0 {
		// It died before reading anything: nothing was applied.
		return "", false, nil
	}
	if p.err != nil {
		return p.stderr.String(), true, p.err
	}
	return p.stdout.String(), true, nil
}

// Close stops the idle processes (they read an empty script and exit
// without changing anything) and waits for pending refills. Restore still
// works afterwards, cold. Close on a runner from New does nothing.
func (e *Exec) Close() error {
	w := e.warm
	if w == nil {
		return nil
	}
	w.mu.Lock()
	w.closed = true
	idle := w.idle
	w.idle = map[string]*warmProc{}
	w.mu.Unlock()
	w.wg.Wait()
	for _, p := range idle {
		p.stdin.Close()
		<-p.exited
	}
	return nil
}
