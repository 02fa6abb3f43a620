package testrig

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/store"
)

// EditRecord rewrites one stored record (the controller is stopped): the
// record of kind and id as edit leaves it, given the stored one (or a zero
// one if there is none).
func EditRecord[R any](t *testing.T, r *Restartable, kind, id string, edit func(rec *R)) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(r.Last.Config().DataDir, libnetwork.StoreFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var rec R
	if raw, err := st.Get(kind, id); err == nil {
		if err := records.Decode(kind, id, raw, &rec); err != nil {
			t.Fatal(err)
		}
	}
	edit(&rec)
	b, err := records.Encode(kind, id, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(store.Op{Kind: kind, ID: id, Value: b}); err != nil {
		t.Fatal(err)
	}
}

// EditRawRecord rewrites one stored record as JSON fields, to give it a
// form package records does not write (the controller is stopped).
func EditRawRecord(t *testing.T, r *Restartable, kind, id string, edit func(m map[string]any)) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(r.Last.Config().DataDir, libnetwork.StoreFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	raw, err := st.Get(kind, id)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(store.Op{Kind: kind, ID: id, Value: b}); err != nil {
		t.Fatal(err)
	}
}

func HostLinkByAlias(t *testing.T, h *netlink.Handle, alias string) []netlink.Link {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []netlink.Link
	for _, l := range links {
		if l.Attrs().Alias == alias {
			out = append(out, l)
		}
	}
	return out
}
