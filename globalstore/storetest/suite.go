package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/types"
)

// Cluster is one store under test.
type Cluster interface {
	// Client connects a new client, as one more host would; the suite
	// closes it.
	Client(t testing.TB) globalstore.KV
	// Stop makes the store unreachable and Start brings it back with its
	// data (for a real store: the server process killed and restarted).
	Stop(t testing.TB)
	Start(t testing.TB)
}

// Suite describes the provider under test.
type Suite struct {
	New func(t testing.TB) Cluster
}

// Timeout is the Store timeout of the suite's calls that must succeed:
// generous, since the machine is shared and runs with -race.
const Timeout = 10 * time.Second

func store(t testing.TB, c Cluster, timeout time.Duration) *globalstore.Store {
	t.Helper()
	kv := c.Client(t)
	t.Cleanup(func() { _ = kv.Close() })
	return globalstore.New(kv, globalstore.Options{Prefix: "/test", Timeout: timeout})
}

// Run runs the contract. Its cases run in parallel, each on its own
// Cluster, since most of their time is spent waiting for leases.
func Run(t *testing.T, s Suite) {
	t.Run("ClaimsExclusiveUnderConcurrency", func(t *testing.T) { t.Parallel(); concurrentClaims(t, s.New(t), 3, 8, 30) })
	t.Run("ClaimOwnerIdempotent", func(t *testing.T) { t.Parallel(); ownerIdempotent(t, s.New(t)) })
	t.Run("NetworkNamesUnique", func(t *testing.T) { t.Parallel(); networkNames(t, s.New(t)) })
	t.Run("EndpointNamesAndAddresses", func(t *testing.T) { t.Parallel(); endpoints(t, s.New(t)) })
	t.Run("LeaseExpiryFreesDeadHost", func(t *testing.T) { t.Parallel(); leaseExpiry(t, s.New(t)) })
	t.Run("ResumeSession", func(t *testing.T) { t.Parallel(); resume(t, s.New(t)) })
	t.Run("Evict", func(t *testing.T) { t.Parallel(); evict(t, s.New(t)) })
	t.Run("UnavailableIsBoundedAndClassified", func(t *testing.T) { t.Parallel(); unavailable(t, s.New(t)) })
	t.Run("WatchRelistsAfterCompaction", func(t *testing.T) { t.Parallel(); watchCompaction(t, s.New(t)) })
	t.Run("Restart", func(t *testing.T) { t.Parallel(); restart(t, s.New(t)) })
}

// Percentile is the p-th percentile (0-100) of ds.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// concurrentClaims has hosts × workers goroutines each claim per addresses
// from one /22 (random candidates, retry on a lost claim) and checks that
// nobody got an address twice and the store holds exactly what was won.
func concurrentClaims(t *testing.T, c Cluster, hosts, workers, per int) {
	base := netip.MustParsePrefix("10.1.0.0/22")
	size := 1 << (32 - base.Bits())
	var mu sync.Mutex
	won := map[netip.Addr]string{}
	var lat []time.Duration
	lost := 0
	var wg sync.WaitGroup
	errs := make(chan error, hosts*workers)
	for h := 0; h < hosts; h++ {
		st := store(t, c, Timeout)
		for w := 0; w < workers; w++ {
			owner := fmt.Sprintf("h%d-w%d", h, w)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for got := 0; got < per; {
					a := base.Addr()
					for i := 1 + rand.IntN(size-2); i > 0; i-- {
						a = a.Next()
					}
					start := time.Now()
					err := st.Claim(context.Background(), owner, globalstore.NoLease, globalstore.Address("n1", a))
					d := time.Since(start)
					var ce *globalstore.ClaimError
					switch {
					case err == nil:
						mu.Lock()
						if prev, dup := won[a]; dup && prev != owner {
							mu.Unlock()
							errs <- fmt.Errorf("%s handed to %s and %s", a, prev, owner)
							return
						}
						dupSelf := won[a] == owner
						won[a] = owner
						lat = append(lat, d)
						mu.Unlock()
						if !dupSelf {
							got++
						}
					case errors.As(err, &ce) && types.IsForbidden(err):
						mu.Lock()
						lost++
						mu.Unlock()
					default:
						errs <- fmt.Errorf("%s: claim %s: %w", owner, a, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(won) != hosts*workers*per {
		t.Fatalf("won %d addresses, want %d", len(won), hosts*workers*per)
	}
	st := store(t, c, Timeout)
	for a, owner := range won {
		got, err := st.Holder(context.Background(), globalstore.Address("n1", a))
		if err != nil || got != owner {
			t.Fatalf("store says %s is held by %q (%v), the claimer was %s", a, got, err, owner)
		}
	}
	kvs, _, err := st.KV().List(context.Background(), "/test/nets/n1/addr/")
	if err != nil || len(kvs) != len(won) {
		t.Fatalf("store holds %d address keys (%v), want %d", len(kvs), err, len(won))
	}
	t.Logf("%d addresses won by %d goroutines (%d successful claims, repeats of an owner's own included): %d lost races; latency p50 %v p99 %v",
		len(won), hosts*workers, len(lat), lost, Percentile(lat, 50), Percentile(lat, 99))
}

func ownerIdempotent(t *testing.T, c Cluster) {
	ctx := context.Background()
	a, b := store(t, c, Timeout), store(t, c, Timeout)
	vni := globalstore.VNI(4096)
	if err := a.Claim(ctx, "net-a", globalstore.NoLease, vni); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim(ctx, "net-a", globalstore.NoLease, vni); err != nil {
		t.Fatalf("a retry by the owner must succeed: %v", err)
	}
	err := b.Claim(ctx, "net-b", globalstore.NoLease, globalstore.VNI(4097), vni)
	var ce *globalstore.ClaimError
	if !types.IsForbidden(err) || !errors.As(err, &ce) || ce.Owner != "net-a" || ce.Claim != vni {
		t.Fatalf("claim of a taken VNI: want Forbidden naming net-a, got %v", err)
	}
	if h, _ := b.Holder(ctx, globalstore.VNI(4097)); h != "" {
		t.Fatalf("a failed claim left VNI 4097 held by %q: all or none", h)
	}
	if err := b.Release(ctx, "net-b", vni); err != nil {
		t.Fatal(err)
	}
	if h, _ := b.Holder(ctx, vni); h != "net-a" {
		t.Fatalf("a release by a non-owner freed the claim (holder %q)", h)
	}
	if err := a.Release(ctx, "net-a", vni); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "net-a", vni); err != nil {
		t.Fatalf("a second release must succeed: %v", err)
	}
	if err := b.Claim(ctx, "net-b", globalstore.NoLease, vni); err != nil {
		t.Fatalf("a released VNI must be claimable: %v", err)
	}
	if err := a.Claim(ctx, "x", globalstore.NoLease, globalstore.Claim{Kind: globalstore.ClaimAddress, Name: "10.0.0.1"}); !types.IsBadRequest(err) {
		t.Fatalf("an address claim without network: want BadRequest, got %v", err)
	}
}

func networkNames(t *testing.T, c Cluster) {
	ctx := context.Background()
	sts := []*globalstore.Store{store(t, c, Timeout), store(t, c, Timeout), store(t, c, Timeout)}
	errs := make([]error, len(sts))
	var wg sync.WaitGroup
	for i, st := range sts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.CreateNetwork(ctx, globalstore.Network{ID: fmt.Sprintf("nid%d", i), Name: "blue", Driver: "overlay",
				Host: fmt.Sprintf("h%d", i), Claims: []globalstore.Claim{globalstore.VNI(uint32(5000 + i))}})
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		var ce *globalstore.ClaimError
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("hosts %d and %d both created network blue", winner, i)
		case !types.IsForbidden(err) || !errors.As(err, &ce) || ce.Claim.Kind != globalstore.ClaimNetworkName:
			t.Fatalf("host %d: want Forbidden for the taken name, got %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no host created network blue")
	}
	for i, st := range sts {
		n, err := st.NetworkByName(ctx, "blue")
		if err != nil || n.ID != fmt.Sprintf("nid%d", winner) {
			t.Fatalf("host %d finds blue as %+v, %v", i, n, err)
		}
		if _, err := st.Network(ctx, n.ID); err != nil {
			t.Fatalf("host %d by ID: %v", i, err)
		}
		if h, _ := st.Holder(ctx, globalstore.VNI(uint32(5000+i))); i != winner && h != "" {
			t.Fatalf("the losing create of host %d left its VNI claimed by %q", i, h)
		}
	}
	// A taken VNI fails the create and leaves the name free.
	loser := (winner + 1) % 3
	err := sts[loser].CreateNetwork(ctx, globalstore.Network{ID: "nidx", Name: "red",
		Claims: []globalstore.Claim{globalstore.VNI(uint32(5000 + winner))}})
	if !types.IsForbidden(err) {
		t.Fatalf("create with a taken VNI: want Forbidden, got %v", err)
	}
	if _, err := sts[loser].NetworkByName(ctx, "red"); !types.IsNotFound(err) {
		t.Fatalf("a failed create left network red behind: %v", err)
	}
	if err := sts[loser].CreateNetwork(ctx, globalstore.Network{ID: "nidy", Name: "red"}); err != nil {
		t.Fatal(err)
	}
	if err := sts[0].CreateNetwork(ctx, globalstore.Network{ID: "nidq", Name: "green",
		Claims: []globalstore.Claim{globalstore.Address("nidy", netip.MustParseAddr("10.0.0.1"))}}); !types.IsBadRequest(err) {
		t.Fatalf("a network claiming another network's address: want BadRequest, got %v", err)
	}
	if _, err := sts[0].Network(ctx, "nope"); !types.IsNotFound(err) {
		t.Fatalf("unknown network: want NotFound, got %v", err)
	}
	ns, _, err := sts[0].Networks(ctx)
	if err != nil || len(ns) != 2 {
		t.Fatalf("Networks: %v, %v; want blue and red", ns, err)
	}
	if err := sts[0].DeleteNetwork(ctx, fmt.Sprintf("nid%d", winner)); err != nil {
		t.Fatal(err)
	}
	if err := sts[1].CreateNetwork(ctx, globalstore.Network{ID: "nidz", Name: "blue",
		Claims: []globalstore.Claim{globalstore.VNI(uint32(5000 + winner))}}); err != nil {
		t.Fatalf("name and VNI of a deleted network must be free: %v", err)
	}
}

// sortedIDs lists the endpoint IDs of es.
func sortedIDs(es []globalstore.Endpoint) []string {
	var ids []string
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	sort.Strings(ids)
	return ids
}
