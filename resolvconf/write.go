package resolvconf

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/opencnm/libnetwork/internal/atomicfile"
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

// WriteFile rewrites the file at path with content in place (same inode,
// so a bind mount of it, as an OCI runtime makes of /etc/resolv.conf,
// shows the new content at once), with mode 0644, and records the
// content's hash in path+HashSuffix. It returns the hash.
//
// The file is truncated, then written with one write (see
// atomicfile.WriteInPlace): a concurrent reader may see it empty or
// partly written for that instant, never a mix of old and new. The sidecar
// is replaced atomically, twice: before the write it names both the new
// hash and the file's current one ("pending"), after it only the new one.
// So if the process dies at any point, the file as it is (old, empty or
// new) still counts as ours and the next refresh rewrites it; only a
// partial write left by a crash mid-write reads as a user edit, which
// leaves the file alone: the safe side.
func WriteFile(path string, content []byte) (string, error) {
	h := Hash(content)
	cur, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := atomicWrite(path+HashSuffix, []byte(h+"\n"+Hash(cur)+"\n")); err != nil {
			return "", err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", types.InternalErrorf("reading %q: %w", path, err)
	}
	if err := atomicfile.WriteInPlace(path, content, FileMode); err != nil {
		return "", types.InternalErrorf("writing %q: %w", path, err)
	}
	if err := atomicWrite(path+HashSuffix, []byte(h+"\n")); err != nil {
		return "", err
	}
	return h, nil
}

// UserModified reports whether the file at path differs from what WriteFile
// last wrote there, i.e. whether someone edited, replaced or removed it since,
// in which case a refresh must leave it alone. A file never written by
// WriteFile (no sidecar) counts as the user's; while a write is pending
// (WriteFile did not finish), the old content, the new one and an empty
// file count as ours.
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
	hashes := strings.Fields(string(want))
	if len(hashes) > 1 && len(content) == 0 {
		return false, nil
	}
	return !slices.Contains(hashes, Hash(content)), nil
}

// atomicWrite replaces the file at path all-or-nothing, with FileMode: for
// the sidecar, which nothing bind-mounts.
func atomicWrite(path string, content []byte) error {
	if err := atomicfile.Write(path, content, FileMode); err != nil {
		return types.InternalErrorf("writing %q: %w", path, err)
	}
	return nil
}
