// Package multihost holds the multi-host scenario tests and benchmarks:
// several hosts (network namespaces on an underlay bridge, one controller
// each, internal/testrig.NewCluster) over a real etcd that each test starts
// on a unix socket in its temp dir (internal/etcdproc) and stops. It is in
// the store/etcd module because the controllers link the etcd provider, as
// a user's program does.
package multihost
