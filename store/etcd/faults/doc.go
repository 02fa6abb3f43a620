// Package faults holds the multi-host fault tests of issue #16: a host's
// controller SIGKILLed in a child process (this test binary run again in a
// child mode) at random points of a create/join/leave/delete loop, the
// etcd process killed and restarted under the hosts, and restarts within
// the lease. Every test makes its own namespaces (hosts on an underlay
// bridge in a lab namespace, internal/testrig.NewCluster) and its own etcd
// (internal/etcdproc), and stops what it started.
package faults
