package libnetwork_test

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/opencnm/libnetwork/globalstore"
)

// tapKV is a KV in front of a memstore client that counts the calls not
// about leases and can refuse the next network deletes as a store away
// would.
type tapKV struct {
	globalstore.KV
	mu              sync.Mutex
	calls           []string // non-lease calls: "txn", "get <key>", "list <prefix>", "watch"
	failNetDeletes  int      // network deletes still to refuse
	beforeNetCreate func()   // run once before the next network create goes to the store
}

func (k *tapKV) note(call string) {
	k.mu.Lock()
	k.calls = append(k.calls, call)
	k.mu.Unlock()
}

// since returns the non-lease calls from index i on.
func (k *tapKV) since(i int) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.calls[i:]...)
}

func (k *tapKV) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.calls)
}

func (k *tapKV) Txn(ctx context.Context, conds []globalstore.Cond, ops []globalstore.Op) (globalstore.TxnResult, error) {
	var keys []string
	netDelete, netCreate := false, false
	for _, o := range ops {
		keys = append(keys, o.Key)
		if o.Kind == globalstore.OpDeletePrefix && strings.Contains(o.Key, "/nets/") {
			netDelete = true
		}
		if o.Kind == globalstore.OpPut && strings.Contains(o.Key, "/nets/") && strings.HasSuffix(o.Key, "/config") {
			netCreate = true
		}
	}
	k.note("txn " + strings.Join(keys, " "))
	k.mu.Lock()
	refuse := netDelete && k.failNetDeletes > 0
	if refuse {
		k.failNetDeletes--
	}
	hook := k.beforeNetCreate
	if netCreate {
		k.beforeNetCreate = nil
	} else {
		hook = nil
	}
	k.mu.Unlock()
	if hook != nil {
		hook()
	}
	if refuse {
		return globalstore.TxnResult{}, fmt.Errorf("%w: refused by the test", globalstore.ErrUnavailable)
	}
	return k.KV.Txn(ctx, conds, ops)
}

func (k *tapKV) Get(ctx context.Context, key string) (globalstore.KeyValue, bool, error) {
	k.note("get " + key)
	return k.KV.Get(ctx, key)
}

func (k *tapKV) List(ctx context.Context, prefix string) ([]globalstore.KeyValue, int64, error) {
	k.note("list " + prefix)
	return k.KV.List(ctx, prefix)
}

func (k *tapKV) Watch(ctx context.Context, prefix string, fromRev int64) <-chan globalstore.WatchBatch {
	k.note("watch " + prefix)
	return k.KV.Watch(ctx, prefix, fromRev)
}
