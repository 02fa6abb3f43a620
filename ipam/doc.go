// Package ipam is the built-in IPAM driver ("default") and the null IPAM
// driver ("null").
//
// The built-in Allocator follows upstream libnetwork's semantics with these
// documented choices:
//
//   - Address spaces are LocalDefault and GlobalDefault. Pool IDs are
//     "<space>/<pool>[/<sub-pool>]"; the same pool in both spaces is allowed.
//   - Driver-chosen pools come from the predefined lists (DefaultLocalPools,
//     or the NetworkToSplit list given to New; DefaultGlobalPools). The lists
//     are never expanded: candidates are walked with 128-bit arithmetic and
//     whole runs of candidates covered by an allocated pool or an excluded
//     prefix are skipped in one step, so an IPv6 base such as fd00::/8 split
//     into /64s is as cheap as 172.20.0.0/14 split into /16s.
//   - A rotating cursor per space and family makes a released pool come back
//     only after the rest of the list has been tried (upstream's behaviour,
//     which keeps a just-deleted network's subnet from being reused at once).
//   - There are no default IPv6 pools (as upstream): an IPv6 request without
//     a pool fails with ErrNoAvailablePool unless New was given an IPv6 base.
//   - An explicit pool's family must match PoolRequest.V6 (BadRequest
//     otherwise). Non-canonical prefixes ("10.1.2.3/16") are masked.
//   - ReleasePool of an unknown or already released ID is ErrPoolNotFound
//     (NotFound) and changes nothing; a master pool created implicitly by a
//     sub-pool request has no ID of its own to release.
//   - The network address is never handed out, nor the IPv4 broadcast
//     address (except in /31, /32, /127 and /128 pools, where every address
//     is usable). Requesting or releasing them is ErrIPOutOfRange.
//   - Releasing an address that is not allocated is ErrIPNotAllocated
//     (upstream silently corrupted its free count).
//
// Addresses are kept in a bitmap per master pool, independent of any
// storage: a 64-ary radix tree of 64-bit words with a "full" summary word
// per node, so finding a free address costs the same at 1% and 99% fill.
// Nodes exist only where addresses are allocated. Pools with 64 or more
// host bits (IPv6 /64 and larger) are capped at 2^64-1 ordinals: only the
// first 2^64-1 addresses after the network address can be allocated, a
// preferred address beyond them is ErrIPOutOfRange and a sub-pool starting
// beyond them is ErrInvalidSubPool. A full IPv4 /16 takes about 8.7 KiB; a
// fresh IPv6 /64 about 1.2 KiB. Steady-state RequestAddress and
// ReleaseAddress do not allocate.
//
// Preferred addresses (RequestAddress's prefer) and releases may name any
// address of the master pool, also through a sub-pool's ID, as upstream:
// that is how a gateway outside the sub-pool (--ip-range) is reserved.
package ipam
