// Package etcd is the etcd v3 provider of the global store. Importing it
// registers "etcd" with globalstore, which is how config.OptionKVProvider
// ("etcd") finds it:
//
//	import _ "github.com/opencnm/libnetwork/store/etcd"
//
// It is its own Go module (github.com/opencnm/libnetwork/store/etcd) so that
// the etcd client, gRPC and protobuf are neither built nor listed in go.sum
// for programs that never import it (docs/globalstore.md has the figures).
//
// Every call runs under the caller's context, which globalstore bounds by
// its timeout; the client is built with a 1 s gRPC keepalive, so a dead
// server is noticed in about a second rather than at the TCP timeout.
// Watches require a leader: a member cut off from its quorum ends the watch
// (globalstore resumes it) instead of serving stale silence.
package etcd
