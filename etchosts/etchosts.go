// Package etchosts writes and maintains a sandbox's hosts file.
//
// A File owns one path and serialises every change to it, so concurrent joins
// and leaves of one sandbox cannot lose each other's records. Changes are
// written in place with mode 0644 (same inode: an OCI runtime bind-mounts
// the file into the running container, and a replaced file would never
// reach it): truncate, then one write of the whole content, so a
// concurrent reader may see the file empty or partly written for that
// instant (see atomicfile.WriteInPlace for when a reader can see old and
// new content mixed).
//
// Difference from upstream libnetwork, on purpose: Delete removes exactly the
// record lines Add wrote (same address, same names, same order), never "any
// line ending in the name", which made deleting "foo" also delete the line for
// "barfoo" and deleted lines the user wrote. Lines this package did not write
// are never changed.
package etchosts

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/opencnm/libnetwork/internal/atomicfile"
	"github.com/opencnm/libnetwork/types"
)

// FileMode is the mode of written hosts files: readable by any user in the
// container.
const FileMode fs.FileMode = 0o644

// defaultLines start every built hosts file. They are literal text rather than
// Records because their conventional spelling ("fe00::0") is not the
// canonical form of the address ("fe00::").
var defaultLines = []string{
	"127.0.0.1\tlocalhost",
	"::1\tlocalhost ip6-localhost ip6-loopback",
	"fe00::0\tip6-localnet",
	"ff00::0\tip6-mcastprefix",
	"ff02::1\tip6-allnodes",
	"ff02::2\tip6-allrouters",
}

// Record is one hosts-file line: an address and the names it answers to,
// written as "<ip>\t<name> <name>...".
type Record struct {
	IP    netip.Addr
	Names []string
}

// String returns the line for r, without the newline.
func (r Record) String() string {
	return r.IP.String() + "\t" + strings.Join(r.Names, " ")
}

// Names returns the names of a container's own line: its fully qualified name
// (hostname, then domainname if set) and, if that has a dot, the short name
// before the first one, as upstream writes it; so "somehost.example.com" with
// no domain name answers to "somehost" too.
func Names(hostname, domainname string) []string {
	fqdn := hostname
	if d := strings.TrimPrefix(domainname, "."); d != "" {
		fqdn += "." + d
	}
	if short, _, ok := strings.Cut(fqdn, "."); ok && short != "" {
		return []string{fqdn, short}
	}
	return []string{fqdn}
}

// validate rejects records whose line would not parse back as the same record
// (and so could not be deleted exactly) or would break the file.
func (r Record) validate() error {
	if z := r.IP.Zone(); !r.IP.IsValid() || (z != "" && !validName(z)) {
		return types.BadRequestErrorf("validating hosts record %v: %w", r.Names, errors.New("invalid ip address"))
	}
	if len(r.Names) == 0 {
		return types.BadRequestErrorf("validating hosts record for %s: %w", r.IP, errors.New("no names"))
	}
	for _, n := range r.Names {
		if !validName(n) {
			return types.BadRequestErrorf("validating hosts record for %s: invalid name %q: %w", r.IP, n,
				errors.New("must be non-empty valid UTF-8 without spaces, control characters or '#'"))
		}
	}
	return nil
}

func validName(n string) bool {
	if n == "" || !utf8.ValidString(n) || strings.ContainsRune(n, '#') {
		return false
	}
	for _, c := range n {
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			return false
		}
	}
	return true
}

// File is the hosts file at one path. Use one File per path and share it:
// the mutex inside is what serialises changes. The zero value is not usable;
// call New.
type File struct {
	path string
	mu   sync.Mutex // serialises read-modify-write of path
}

// New returns the File for path. It does not touch the disk.
func New(path string) *File { return &File{path: path} }

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Build (re)writes the file from scratch: the localhost and IPv6 default
// lines, then extra (the user's extra hosts), then own (the sandbox's own
// records). Nothing is written if a record is invalid.
func (f *File) Build(extra, own []Record) error {
	var b strings.Builder
	for _, l := range defaultLines {
		b.WriteString(l + "\n")
	}
	for _, recs := range [][]Record{extra, own} {
		for _, r := range recs {
			if err := r.validate(); err != nil {
				return err
			}
			b.WriteString(r.String() + "\n")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return write(f.path, []byte(b.String()))
}

// Add appends one line per record. A missing file is created. Adding a record
// that is already present adds another line, so that a matching Delete
// removes only the one this Add wrote.
func (f *File) Add(recs ...Record) error {
	var add strings.Builder
	for _, r := range recs {
		if err := r.validate(); err != nil {
			return err
		}
		add.WriteString(r.String() + "\n")
	}
	if len(recs) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	content, err := f.readLocked()
	if err != nil {
		return err
	}
	if content != "" && !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	return write(f.path, []byte(content+add.String()))
}

// Delete removes, for each record, the last line that is exactly that
// record's line. Since Add appends, this is the line Add wrote even when the
// user has an identical line of their own further up. Records not in the file
// are skipped, and a missing file is not an error: deleting what is already
// gone succeeds.
func (f *File) Delete(recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	content, err := f.readLocked()
	if err != nil || content == "" {
		return err
	}
	lines := strings.SplitAfter(content, "\n")
	changed := false
	for _, r := range recs {
		want := r.String()
		for i := len(lines) - 1; i >= 0; i-- {
			if strings.TrimSuffix(lines[i], "\n") == want {
				lines = append(lines[:i], lines[i+1:]...)
				changed = true
				break
			}
		}
	}
	if !changed {
		return nil
	}
	return write(f.path, []byte(strings.Join(lines, "")))
}

// readLocked returns the file's content; a missing file reads as empty.
func (f *File) readLocked() (string, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", types.InternalErrorf("reading hosts file %q: %w", f.path, err)
	}
	return string(b), nil
}

// write rewrites the file at path in place, with FileMode.
func write(path string, content []byte) error {
	if err := atomicfile.WriteInPlace(path, content, FileMode); err != nil {
		return types.InternalErrorf("writing hosts file %q: %w", path, err)
	}
	return nil
}
