// Package plugintest runs plugin servers inside a test process: on a unix
// socket in a private plugin directory or on loopback TCP with a spec file,
// and lets a test kill them abruptly. It never touches Docker's system
// plugin directories.
package plugintest

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Handler serves plugin requests on a listener until the listener closes.
// go-plugins-helpers' sdk.Handler (and the network and ipam handlers built
// on it) satisfy it.
type Handler interface {
	Serve(l net.Listener) error
}

// HTTP adapts a plain http.Handler, for hand-written plugins.
type HTTP struct{ http.Handler }

// Serve serves h on l until l closes.
func (h HTTP) Serve(l net.Listener) error {
	return (&http.Server{Handler: h.Handler}).Serve(l)
}

// Dir returns a fresh plugin directory removed at the end of the test. It
// lives directly under the system temp directory because unix socket paths
// are limited to about 100 bytes and t.TempDir paths grow with test names.
func Dir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "plug")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Server is a running plugin server.
type Server struct {
	// Addr is the plugin's URL (unix:///path or tcp://127.0.0.1:port).
	Addr string

	l    *trackingListener
	done chan struct{}
	once sync.Once
}

// ServeUnix serves h on a unix socket at path (creating its directory) until
// the test ends or Kill.
func ServeUnix(t testing.TB, path string, h Handler) *Server {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, "unix://"+path, l, h)
}

// ServeTCP serves h on a free 127.0.0.1 port until the test ends or Kill.
func ServeTCP(t testing.TB, h Handler) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, "tcp://"+l.Addr().String(), l, h)
}

// ServeTLS serves h over TLS with cfg on a free 127.0.0.1 port; Addr is
// https://127.0.0.1:port.
func ServeTLS(t testing.TB, h Handler, cfg *tls.Config) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, "https://"+l.Addr().String(), tls.NewListener(l, cfg), h)
}

func serve(t testing.TB, addr string, l net.Listener, h Handler) *Server {
	s := &Server{Addr: addr, l: &trackingListener{Listener: l, conns: map[net.Conn]struct{}{}}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = h.Serve(s.l)
	}()
	t.Cleanup(s.Kill)
	return s
}

// Kill stops the server the way a crashing plugin stops: the listener and
// every open connection close at once, mid-request or not. It waits for
// the serving goroutine to return. Killing twice is harmless.
func (s *Server) Kill() {
	s.once.Do(func() {
		s.l.closeAll()
		<-s.done
	})
}

// WriteFile writes data to path, creating its directory.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteSpec writes a .spec file holding addr.
func WriteSpec(t testing.TB, path, addr string) { WriteFile(t, path, []byte(addr+"\n")) }

// WriteJSONSpec writes a .json spec file for name at addr; tls may be nil.
func WriteJSONSpec(t testing.TB, path, name, addr string, tls any) {
	t.Helper()
	data, err := json.Marshal(map[string]any{"Name": name, "Addr": addr, "TLSConfig": tls})
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, path, data)
}

// trackingListener remembers accepted connections so Kill can cut them.
type trackingListener struct {
	net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[c] = struct{}{}
	return &trackedConn{Conn: c, l: l}, nil
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	// The server may have closed the listener already; either way it is shut.
	_ = l.Listener.Close()
	for c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l *trackingListener
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c.Conn)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// Flood answers every request with status 200, prefix, and then size bytes
// of filler ('a'), or filler without end when size < 0, until the client
// stops reading. With a prefix that opens a JSON string (`{"Err":"`) the
// body is one ever-growing value: what a hostile or broken plugin sends to
// exhaust the controller's memory. The filler comes from one buffer, so
// the server side allocates nothing per byte sent.
func Flood(prefix string, size int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		if _, err := io.WriteString(w, prefix); err != nil {
			return
		}
		buf := bytes.Repeat([]byte{'a'}, 64<<10)
		for size != 0 {
			chunk := buf
			if size > 0 && size < int64(len(chunk)) {
				chunk = chunk[:size]
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
			if size > 0 {
				size -= int64(len(chunk))
			}
		}
	}
}

// Trickle answers with status 200 and prefix, then one filler byte every
// interval, never finishing, until the client goes away: a reply still
// arriving when the caller's deadline passes.
func Trickle(prefix string, every time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		fl, _ := w.(http.Flusher)
		if _, err := io.WriteString(w, prefix); err != nil {
			return
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if fl != nil {
				fl.Flush()
			}
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
			}
			if _, err := w.Write([]byte{'a'}); err != nil {
				return
			}
		}
	}
}
