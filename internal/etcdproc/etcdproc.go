package etcdproc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DefaultBinary is where `make deps` and .ci/run unpack etcd-server.
const DefaultBinary = "/opt/opencnm/etcd-server/usr/bin/etcd"

// Binary finds the etcd binary: $OPENCNM_ETCD, DefaultBinary, or etcd on PATH.
func Binary() (string, error) {
	if p := os.Getenv("OPENCNM_ETCD"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("OPENCNM_ETCD: %w", err)
		}
		return p, nil
	}
	if _, err := os.Stat(DefaultBinary); err == nil {
		return DefaultBinary, nil
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no etcd binary: run `make deps` (it unpacks Debian's etcd-server to %s) or set OPENCNM_ETCD", DefaultBinary)
}

// Options describe one member. The zero value but Dir is a single member
// on unix sockets in Dir.
type Options struct {
	Dir  string // data directory and, for unix sockets, their home; required
	Name string // member name; "m" when empty
	// ClientURL and PeerURL are what the member listens on and
	// advertises; empty means unix sockets in Dir.
	ClientURL, PeerURL string
	// InitialCluster lists every member as name=peerURL; empty means this
	// member alone.
	InitialCluster string
	// NetNS, when set, is a namespace file (/run/netns/x, /proc/PID/ns/net)
	// the member runs in, through nsenter.
	NetNS string
	// Dial, when set, makes the connections of the readiness check (to a
	// member in another namespace, dial from there).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS, when set, makes the client URL TLS-only with client
	// certificates signed by TLS.CA required (a unix client URL becomes
	// unixs://localhost:0, the name the server certificate carries).
	TLS *Certs
	// Args are extra flags.
	Args []string
}

// Member is one running (or stopped) etcd process.
type Member struct {
	o      Options
	bin    string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

// Start starts a member and waits until it serves (up to 30 s; a first
// cold start of the binary takes about a second).
func Start(o Options) (*Member, error) {
	if o.Dir == "" {
		return nil, errors.New("etcdproc: Options.Dir is required")
	}
	if o.Name == "" {
		o.Name = "m"
	}
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if o.ClientURL == "" {
		// etcd wants host:port even for a unix socket; the socket file
		// is that name, relative to the working directory (Dir).
		o.ClientURL = "unix://c:0"
		if o.TLS != nil {
			// The client checks the server's certificate against the
			// socket's file name without its ":port".
			o.ClientURL = "unixs://localhost:0"
		}
	}
	if o.PeerURL == "" {
		o.PeerURL = "unix://p:0"
	}
	if o.InitialCluster == "" {
		o.InitialCluster = o.Name + "=" + o.PeerURL
	}
	m := &Member{o: o, bin: bin}
	if err := m.Start(); err != nil {
		return nil, err
	}
	return m, nil
}

// Endpoint is the URL a client dials.
func (m *Member) Endpoint() string {
	if path, ok := m.socket(); ok {
		if m.o.TLS != nil {
			return "unixs://" + path
		}
		return "unix://" + path
	}
	return m.o.ClientURL
}

// socket is the client socket's absolute path, for a unix-socket member.
func (m *Member) socket() (string, bool) {
	rest, ok := strings.CutPrefix(m.o.ClientURL, "unix://")
	if !ok {
		if rest, ok = strings.CutPrefix(m.o.ClientURL, "unixs://"); !ok {
			return "", false
		}
	}
	return filepath.Join(m.o.Dir, rest), true
}

// Start (re)starts a member that is not running, on its data directory,
// and waits until it serves (which, in a cluster, needs a quorum up).
func (m *Member) Start() error {
	if err := m.spawn(); err != nil {
		return err
	}
	return m.ready()
}

func (m *Member) ready() error {
	if err := m.waitReady(30 * time.Second); err != nil {
		m.Kill()
		return fmt.Errorf("etcdproc: member %s: %w; log:\n%s", m.o.Name, err, m.Log())
	}
	return nil
}

// spawn starts the process without waiting for it to serve.
func (m *Member) spawn() error {
	if m.cmd != nil {
		return errors.New("etcdproc: member is running")
	}
	for _, u := range []string{m.o.ClientURL, m.o.PeerURL} {
		// A killed member leaves its socket files; a new one cannot bind.
		for _, scheme := range []string{"unix://", "unixs://"} {
			if rest, ok := strings.CutPrefix(u, scheme); ok {
				_ = os.Remove(filepath.Join(m.o.Dir, rest))
			}
		}
	}
	args := []string{
		"--name", m.o.Name, "--data-dir", filepath.Join(m.o.Dir, m.o.Name+".data"),
		"--listen-client-urls", m.o.ClientURL, "--advertise-client-urls", m.o.ClientURL,
		"--listen-peer-urls", m.o.PeerURL, "--initial-advertise-peer-urls", m.o.PeerURL,
		"--initial-cluster", m.o.InitialCluster, "--initial-cluster-state", "new",
		// Ticks faster than etcd's defaults (a member elects itself in
		// ~500 ms, not ~1 s), yet slow enough that a stall of a loaded
		// machine does not start an election: 500 ms is still well
		// inside the fence margin of the fault tests' leases.
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-level", "warn",
	}
	if t := m.o.TLS; t != nil {
		args = append(args, "--cert-file", t.ServerCert, "--key-file", t.ServerKey,
			"--trusted-ca-file", t.CA, "--client-cert-auth")
	}
	args = append(args, m.o.Args...)
	name := m.bin
	if m.o.NetNS != "" {
		args = append([]string{"--net=" + m.o.NetNS, "--", m.bin}, args...)
		name = "nsenter"
	}
	log, err := os.OpenFile(filepath.Join(m.o.Dir, m.o.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = m.o.Dir, log, log
	// Its own process group, so Kill reaches etcd under nsenter too. No
	// Pdeathsig: it fires when the forking OS thread exits, and Go ends
	// threads that a namespace-locked goroutine leaves behind; Kill (a
	// test's Cleanup) is what stops a member.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("etcdproc: start %s: %w", m.bin, err)
	}
	m.cmd, m.log, m.exited = cmd, log, make(chan struct{})
	go func() { _ = cmd.Wait(); close(m.exited) }()
	return nil
}

// waitReady polls /health until the member serves reads and writes.
func (m *Member) waitReady(bound time.Duration) error {
	path, unix := m.socket()
	base := strings.Replace(m.o.ClientURL, "unixs://", "https://", 1)
	tr := &http.Transport{}
	if m.o.Dial != nil {
		tr.DialContext = m.o.Dial
	}
	if t := m.o.TLS; t != nil {
		tc, err := clientTLS(*t)
		if err != nil {
			return err
		}
		tr.TLSClientConfig = tc
	}
	if unix {
		base = "http://localhost"
		if m.o.TLS != nil {
			base = "https://localhost"
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: time.Second}
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		select {
		case <-m.exited:
			return errors.New("exited while starting")
		default:
		}
		if resp, err := cl.Get(base + "/health"); err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(b.String(), `"true"`) {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("not healthy after %v", bound)
}

func clientTLS(c Certs) (*tls.Config, error) {
	pemCA, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	kp, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, ServerName: "localhost"}, nil
}

// PID is the running member's process ID (0 when stopped).
func (m *Member) PID() int {
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Kill SIGKILLs the member (a crash) and waits for it; its data stays.
// Killing a stopped member does nothing.
func (m *Member) Kill() {
	if m.cmd == nil {
		return
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
	m.log.Close()
	m.cmd = nil
}

// Log is what the member wrote, for a failing test's message.
func (m *Member) Log() string {
	b, _ := os.ReadFile(filepath.Join(m.o.Dir, m.o.Name+".log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
