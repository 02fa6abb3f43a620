// Package ports tests published ports over real namespaces: IPv4 and IPv6,
// failed joins that must leave nothing behind, and the gateway modes (nat,
// routed).
package ports
