// Package etcdproc runs real etcd members as child processes for tests:
// the Debian etcd-server binary, unpacked (not installed, so no system
// service starts) by `make deps` and .ci/run. A member is a process, so a
// test can kill it (a crash, not a graceful close), restart it on its data
// directory, and run it inside a network namespace the test made
// (nsenter --net), where it listens on and dials from that namespace's
// addresses: what the partition tests of a 3-member cluster need.
package etcdproc
