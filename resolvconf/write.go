package resolvconf

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/opencnm/libnetwork/internal/atomicfile"
	"io/fs"
	"os"
	"strings"

	"github.com/opencnm/libnetwork/types"
)

// HashSuffix names the sidecar file WriteFile keeps beside a written file:
// "<path>.hash" holds the hash of the content last written there.
const HashSuffix = ".hash"

// FileMode is the mode of written files: the container's processes, whatever
// their user, must be able to read them.
const FileMode fs.FileMode = 0o644

// Hash returns the hash WriteFile records for content: "sha256:<hex>".
func Hash(content []byte) string {
	sum := sha256.Sum256(content)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// WriteFile replaces the file at path with content, atomically (a reader sees
// the old or the new file, never a mix), with mode 0644, then records the
// content's hash in path+HashSuffix. It returns the hash.
//
// The file is replaced by rename, so a bind mount of the old file (as an OCI
// runtime makes of /etc/resolv.conf) keeps showing the old content; a caller
// that must update a running container's view bind-mounts the directory or
// rewrites in place itself.
//
// If the process dies between the two writes, the sidecar no longer matches
// and UserModified reports the file as edited: refreshes then leave it alone,
// which is the safe side.
func WriteFile(path string, content []byte) (string, error) {
	if err := atomicWrite(path, content); err != nil {
		return "", err
	}
	h := Hash(content)
	if err := atomicWrite(path+HashSuffix, []byte(h+"\n")); err != nil {
		return "", err
	}
	return h, nil
}

// UserModified reports whether the file at path differs from what WriteFile
// last wrote there, i.e. whether someone edited, replaced or removed it since,
// in which case a refresh must leave it alone. A file never written by
// WriteFile (no sidecar) counts as the user's.
func UserModified(path string) (bool, error) {
	want, err := os.ReadFile(path + HashSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, types.InternalErrorf("reading hash of %q: %w", path, err)
	}
	content, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, types.InternalErrorf("reading %q: %w", path, err)
	}
	return Hash(content) != strings.TrimSpace(string(want)), nil
}

// atomicWrite replaces the file at path all-or-nothing, with FileMode.
func atomicWrite(path string, content []byte) error {
	if err := atomicfile.Write(path, content, FileMode); err != nil {
		return types.InternalErrorf("writing %q: %w", path, err)
	}
	return nil
}
