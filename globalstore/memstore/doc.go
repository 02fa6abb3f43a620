// Package memstore is an in-memory global store with the semantics of the
// etcd provider: revisions, conditional transactions, leases that expire in
// real time, watches with history and compaction, and an outage switch
// (Stop/Start) under which every call waits for its deadline as a client
// of an unreachable store does. Unit tests of the controller and of
// globalstore run on it; storetest holds both to the same contract.
package memstore
