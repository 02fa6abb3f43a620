// Package atomicfile replaces files all-or-nothing: a reader sees the old
// content or the new, never a mix, and a crash leaves one or the other.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Write puts content in a temporary file beside path, with mode, syncs it
// and renames it over path. A bind mount of the old file keeps showing the
// old content; runtimes that must see updates bind-mount the directory.
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
