package globalstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/types"
)

// lostReply applies the next armed Txn and then withholds its reply until
// the caller's context ends: a commit whose answer never arrived.
type lostReply struct {
	globalstore.KV
	armed atomic.Bool
}

func (l *lostReply) Txn(ctx context.Context, conds []globalstore.Cond, ops []globalstore.Op) (globalstore.TxnResult, error) {
	if !l.armed.CompareAndSwap(true, false) {
		return l.KV.Txn(ctx, conds, ops)
	}
	if _, err := l.KV.Txn(context.Background(), conds, ops); err != nil {
		return globalstore.TxnResult{}, err
	}
	<-ctx.Done()
	return globalstore.TxnResult{}, fmt.Errorf("%w: %w", globalstore.ErrUnavailable, ctx.Err())
}

// A create that committed but whose reply was lost when the caller's own
// deadline ended leaves nothing behind: the name is free for another.
func TestCreateLostReplyAtCallerDeadlineLeavesNothing(t *testing.T) {
	kv := &lostReply{KV: memstore.New().Client()}
	st := globalstore.New(kv, globalstore.Options{Timeout: 30 * time.Second})
	kv.armed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := st.CreateNetwork(ctx, globalstore.Network{ID: "n1", Name: "net"})
	if !types.IsNoService(err) {
		t.Fatalf("create with its reply lost: want NoService, got %v", err)
	}
	if _, err := st.Network(context.Background(), "n1"); !types.IsNotFound(err) {
		t.Fatalf("record of the failed create: want NotFound, got %v", err)
	}
	if err := st.CreateNetwork(context.Background(), globalstore.Network{ID: "n2", Name: "net"}); err != nil {
		t.Fatalf("name of the failed create still held: %v", err)
	}
}
