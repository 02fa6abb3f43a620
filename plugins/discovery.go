// Package plugins finds Docker v1 plugins (network and IPAM drivers served
// over HTTP on a unix socket or TCP) and talks to them.
//
// Discovery looks a plugin up by name in a list of directories; the client
// speaks the v1 plugin protocol: JSON bodies POSTed to /<Interface>.<Method>,
// a Plugin.Activate handshake, and errors reported in the response body.
// Nothing here is process-wide: a Registry holds the directories, the time
// bound and the activated plugins, so several controllers can each have one.
package plugins

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencnm/libnetwork/types"
)

// TLSConfig is the TLS part of a .json plugin spec. Paths name PEM files.
type TLSConfig struct {
	InsecureSkipVerify bool
	CAFile             string
	CertFile           string
	KeyFile            string
}

// Spec says where a plugin listens.
type Spec struct {
	Name string
	// Addr is a URL: unix:///path/to.sock, tcp://host:port (plain HTTP) or
	// https://host:port (HTTP over TLS).
	Addr string
	// TLSConfig applies to https addresses. A .json spec without one gets
	// {InsecureSkipVerify: true}, as Docker does.
	TLSConfig *TLSConfig
	// Path is the file the spec was found in (the socket itself for sockets).
	Path string
}

// Discover looks plugin name up in dirs, in order. In each directory it
// tries, first to last: <name>.sock, <name>/<name>.sock (unix sockets),
// <name>.spec, <name>/<name>.spec (a one-line URL), <name>.json,
// <name>/<name>.json (a JSON spec). Nothing found is a NotFound error at
// once: unlike Docker, discovery never waits for a plugin to appear, only
// for a plugin that is there to answer (see Registry).
func Discover(dirs []string, name string) (*Spec, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	for _, dir := range dirs {
		for _, p := range []string{filepath.Join(dir, name+".sock"), filepath.Join(dir, name, name+".sock")} {
			fi, err := os.Stat(p)
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					return nil, types.InternalErrorf("discover plugin %q: %w", name, err)
				}
				continue
			}
			// A leftover regular file with a socket's name is not a plugin.
			if fi.Mode()&fs.ModeSocket != 0 {
				return &Spec{Name: name, Addr: "unix://" + p, Path: p}, nil
			}
		}
		for _, ext := range []string{".spec", ".json"} {
			for _, p := range []string{filepath.Join(dir, name+ext), filepath.Join(dir, name, name+ext)} {
				data, err := readSpec(p)
				if err != nil {
					if !errors.Is(err, fs.ErrNotExist) {
						return nil, types.Wrapf(err, "discover plugin %q", name)
					}
					continue
				}
				if ext == ".spec" {
					return parseSpecFile(name, p, data)
				}
				return parseJSONFile(name, p, data)
			}
		}
	}
	return nil, types.NotFoundErrorf("plugin %q not found in %s", name, strings.Join(dirs, ", "))
}

// maxSpec bounds a spec file: one holds a URL or a small JSON object.
const maxSpec = 64 << 10

// readSpec reads a spec file, refusing what is not a regular file (a FIFO
// would block discovery until someone writes to it) or is larger than
// maxSpec (a spec linked to /dev/zero or a huge file would fill memory).
func readSpec(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, types.BadRequestErrorf("read plugin spec %s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSpec+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSpec {
		return nil, types.BadRequestErrorf("read plugin spec %s: larger than %d bytes", path, maxSpec)
	}
	return data, nil
}

// validName refuses names that would escape the plugin directories.
func validName(name string) error {
	if strings.TrimSpace(name) == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return types.BadRequestErrorf("invalid plugin name %q", name)
	}
	return nil
}

func parseSpecFile(name, path string, data []byte) (*Spec, error) {
	addr := strings.TrimSpace(string(data))
	if err := checkAddr(addr); err != nil {
		return nil, types.BadRequestErrorf("read plugin spec %s: %w", path, err)
	}
	return &Spec{Name: name, Addr: addr, Path: path}, nil
}

// jsonSpec is the layout of a <name>.json spec file.
type jsonSpec struct {
	Name      string
	Addr      string
	TLSConfig *TLSConfig
}

func parseJSONFile(name, path string, data []byte) (*Spec, error) {
	var js jsonSpec
	if err := json.Unmarshal(data, &js); err != nil {
		return nil, types.BadRequestErrorf("read plugin spec %s: %w", path, err)
	}
	if err := checkAddr(js.Addr); err != nil {
		return nil, types.BadRequestErrorf("read plugin spec %s: %w", path, err)
	}
	if js.TLSConfig == nil {
		js.TLSConfig = &TLSConfig{InsecureSkipVerify: true}
	}
	// The file name wins over the Name field: it is what the user asked for.
	return &Spec{Name: name, Addr: js.Addr, TLSConfig: js.TLSConfig, Path: path}, nil
}

// checkAddr accepts the address forms the client can dial.
func checkAddr(addr string) error {
	if addr == "" {
		return errors.New("empty address")
	}
	u, err := url.Parse(addr)
	if err != nil {
		return fmt.Errorf("bad address %q: %w", addr, err)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" {
			return fmt.Errorf("bad address %q: no socket path", addr)
		}
	case "tcp", "http", "https":
		if u.Host == "" {
			return fmt.Errorf("bad address %q: no host", addr)
		}
	default:
		return fmt.Errorf("bad address %q: unsupported scheme %q", addr, u.Scheme)
	}
	return nil
}
