package etcd

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/opencnm/libnetwork/globalstore"
)

// classify maps etcd's errors onto globalstore's sentinels. An ended
// context, an unreachable or leaderless cluster and a closed client are
// all ErrUnavailable: the store did not answer.
func classify(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return fmt.Errorf("%w: %w", globalstore.ErrLeaseNotFound, err)
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("%w: %w", globalstore.ErrCompacted, err)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w (%w)", globalstore.ErrUnavailable, ctx.Err(), err)
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrTimeout),
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail), errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost),
		errors.Is(err, rpctypes.ErrLeaderChanged), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", globalstore.ErrUnavailable, err)
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return fmt.Errorf("%w: %w", globalstore.ErrUnavailable, err)
	}
	return err
}

func cmp(c globalstore.Cond) clientv3.Cmp {
	switch c.Kind {
	case globalstore.CondExists:
		return clientv3.Compare(clientv3.CreateRevision(c.Key), ">", 0)
	case globalstore.CondEquals:
		return clientv3.Compare(clientv3.Value(c.Key), "=", string(c.Value))
	case globalstore.CondPrefixEmpty:
		// Over a range, a compare holds when it holds for every key in
		// it, so an empty range holds.
		return clientv3.Compare(clientv3.CreateRevision(c.Key), "=", 0).WithPrefix()
	}
	return clientv3.Compare(clientv3.CreateRevision(c.Key), "=", 0)
}

func op(o globalstore.Op) clientv3.Op {
	switch o.Kind {
	case globalstore.OpDelete:
		return clientv3.OpDelete(o.Key)
	case globalstore.OpDeletePrefix:
		return clientv3.OpDelete(o.Key, clientv3.WithPrefix())
	}
	if o.Lease != globalstore.NoLease {
		return clientv3.OpPut(o.Key, string(o.Value), clientv3.WithLease(clientv3.LeaseID(o.Lease)))
	}
	return clientv3.OpPut(o.Key, string(o.Value))
}

// Txn is one etcd transaction; its Else reads the cond keys back.
func (k *KV) Txn(ctx context.Context, conds []globalstore.Cond, ops []globalstore.Op) (globalstore.TxnResult, error) {
	cmps := make([]clientv3.Cmp, 0, len(conds))
	var reads []clientv3.Op
	for _, c := range conds {
		cmps = append(cmps, cmp(c))
		if c.Kind == globalstore.CondPrefixEmpty {
			reads = append(reads, clientv3.OpGet(c.Key, clientv3.WithPrefix(), clientv3.WithLimit(10)))
		} else {
			reads = append(reads, clientv3.OpGet(c.Key))
		}
	}
	thens := make([]clientv3.Op, 0, len(ops))
	for _, o := range ops {
		thens = append(thens, op(o))
	}
	resp, err := k.cli.Txn(ctx).If(cmps...).Then(thens...).Else(reads...).Commit()
	if err != nil {
		return globalstore.TxnResult{}, classify(ctx, err)
	}
	res := globalstore.TxnResult{Succeeded: resp.Succeeded, Revision: resp.Header.Revision}
	if !resp.Succeeded {
		res.Values = map[string][]byte{}
		for _, r := range resp.Responses {
			if rr := r.GetResponseRange(); rr != nil {
				for _, kv := range rr.Kvs {
					res.Values[string(kv.Key)] = kv.Value
				}
			}
		}
	}
	return res, nil
}

// Get is a linearizable read (etcd's default).
func (k *KV) Get(ctx context.Context, key string) (globalstore.KeyValue, bool, error) {
	resp, err := k.cli.Get(ctx, key)
	if err != nil {
		return globalstore.KeyValue{}, false, classify(ctx, err)
	}
	if len(resp.Kvs) == 0 {
		return globalstore.KeyValue{}, false, nil
	}
	kv := resp.Kvs[0]
	return globalstore.KeyValue{Key: key, Value: kv.Value, Lease: globalstore.LeaseID(kv.Lease), ModRevision: kv.ModRevision}, true, nil
}

// List reads a prefix linearizably, sorted by key.
func (k *KV) List(ctx context.Context, prefix string) ([]globalstore.KeyValue, int64, error) {
	resp, err := k.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, classify(ctx, err)
	}
	kvs := make([]globalstore.KeyValue, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kvs = append(kvs, globalstore.KeyValue{Key: string(kv.Key), Value: kv.Value,
			Lease: globalstore.LeaseID(kv.Lease), ModRevision: kv.ModRevision})
	}
	return kvs, resp.Header.Revision, nil
}

func (k *KV) Grant(ctx context.Context, ttlSeconds int64) (globalstore.LeaseID, error) {
	resp, err := k.cli.Grant(ctx, ttlSeconds)
	if err != nil {
		return 0, classify(ctx, err)
	}
	return globalstore.LeaseID(resp.ID), nil
}

func (k *KV) KeepAliveOnce(ctx context.Context, id globalstore.LeaseID) error {
	_, err := k.cli.KeepAliveOnce(ctx, clientv3.LeaseID(id))
	return classify(ctx, err)
}

func (k *KV) Revoke(ctx context.Context, id globalstore.LeaseID) error {
	_, err := k.cli.Revoke(ctx, clientv3.LeaseID(id))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return classify(ctx, err)
}

func (k *KV) Compact(ctx context.Context, rev int64) error {
	_, err := k.cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
	return classify(ctx, err)
}

// Watch follows prefix from fromRev; see globalstore.KV.
func (k *KV) Watch(ctx context.Context, prefix string, fromRev int64) <-chan globalstore.WatchBatch {
	out := make(chan globalstore.WatchBatch, 1)
	ctx, cancel := context.WithCancel(ctx)
	wch := k.cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(fromRev))
	go func() {
		defer close(out)
		defer cancel()
		for resp := range wch {
			var b globalstore.WatchBatch
			switch {
			case resp.CompactRevision != 0:
				b = globalstore.WatchBatch{CompactRevision: resp.CompactRevision,
					Err: fmt.Errorf("watch %s from %d: %w", prefix, fromRev, globalstore.ErrCompacted)}
			case resp.Err() != nil:
				b = globalstore.WatchBatch{Err: classify(ctx, resp.Err())}
			default:
				for _, ev := range resp.Events {
					e := globalstore.KVEvent{Key: string(ev.Kv.Key), Revision: ev.Kv.ModRevision}
					if ev.Type == clientv3.EventTypeDelete {
						e.Type = globalstore.EventDelete
					} else {
						e.Value = ev.Kv.Value
					}
					b.Events = append(b.Events, e)
				}
				if len(b.Events) == 0 {
					continue // a progress notification
				}
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
			if b.Err != nil {
				return
			}
		}
	}()
	return out
}
