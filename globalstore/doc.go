// Package globalstore is the cluster-wide state multi-host networks share:
// network records, endpoint and peer records, and the claims that keep
// names, addresses and VNIs unique across every host.
//
// It has two layers. KV is what a provider implements: a handful of
// primitives (a conditional transaction, a linearizable Get, a List at a
// revision, a Watch from a revision, leases) that etcd v3 offers directly.
// Providers register by name (Register, from an init function; the etcd one
// is github.com/opencnm/libnetwork/store/etcd), so programs that never use a
// global store do not link a store client. Store is the layer the controller
// calls; it owns the key layout and the rules, once for every provider:
//
//   - every claim (a network name, an endpoint name within a network, one
//     address, a VNI, a pool) is one key created in one transaction that
//     succeeds only if the key is absent; a claim already held by the same
//     owner counts as success, so a retry after a lost reply is safe;
//   - a record and the claims it needs are written in the same transaction,
//     so a failure leaves nothing behind;
//   - everything a host owns (its endpoints, their names and addresses, its
//     peers) hangs on the host's one lease (Session), so a host that stops
//     renewing loses all of it at once when the lease expires;
//   - every call is bounded by the Store's timeout, and a store that cannot
//     answer in time fails with a NoService error that wraps ErrUnavailable;
//   - Watch re-lists when the store compacted past its revision instead of
//     retrying the same watch.
//
// Package memstore is an in-memory KV with the same semantics for unit
// tests, and package storetest is the contract suite every KV must pass.
package globalstore
