// Package storetest is the contract every global-store provider passes, run
// against the in-memory fake (globalstore/memstore) and against a real etcd
// (store/etcd): exclusive claims under concurrency from many hosts, unique
// names, owner-idempotent retries, leases that free a dead host's claims,
// bounded classified failures while the store is down, watches that re-list
// after a compaction, and survival of a store restart.
package storetest
