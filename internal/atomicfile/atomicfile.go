// Package atomicfile writes whole files in one of two ways: Write replaces a
// file all-or-nothing (a reader sees the old content or the new, never a
// mix, and a crash leaves one or the other); WriteInPlace keeps the file's
// inode, for files that are bind-mounted elsewhere, at the price of a short
// window in which a reader may see a partial file.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Write puts content in a temporary file beside path, with mode, syncs it
// and renames it over path. A bind mount of the old file keeps showing the
// old content; use WriteInPlace for files a runtime bind-mounts.
func Write(path string, content []byte, mode fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(content); err != nil {
		return err
	}
	// CreateTemp makes 0600 files; Chmod is not subject to the umask.
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteInPlace makes the file at path hold content with mode, keeping its
// inode (creating it if missing), so that every bind mount of it, such as
// an OCI runtime's /etc/resolv.conf in a running container, shows the new
// content. It truncates the file, then writes the whole content with one
// write(2), as upstream libnetwork does.
//
// The window: between the truncate and the end of the write (microseconds
// for a file of a few hundred bytes), a concurrent reader may see an empty
// file or a prefix of the new content; a process killed inside that
// window leaves it so. One read(2) of the whole file never sees old and
// new content mixed; a reader reading in several calls may, if a write that
// shrinks the file lands between them (new content, then the old tail).
// Nothing is synced: the files this is for live on tmpfs (ExecRoot) or are
// rewritten from the model at the next start.
func WriteInPlace(path string, content []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, mode)
	if err != nil {
		return err
	}
	defer f.Close()
	// OpenFile's mode is subject to the umask and ignored for an existing
	// file; Chmod is neither.
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	// os.File.Write repeats a short write; one call to it is one write(2)
	// for a regular file unless the disk is full.
	if _, err := f.Write(content); err != nil {
		return err
	}
	return f.Close()
}
