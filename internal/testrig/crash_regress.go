package testrig

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/store"
	"github.com/vishvananda/netlink"
)

// EditRecord rewrites one stored record (the controller is stopped).
func EditRecord(t *testing.T, r *Restartable, kind, id string, edit func(m map[string]any)) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(r.Last.Config().DataDir, libnetwork.StoreFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := map[string]any{}
	if raw, err := st.Get(kind, id); err == nil {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
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
