// Package remote tests remote network and IPAM plugins served over unix
// sockets and TCP: the protocol, capabilities, errors, limits and restarts.
package remote
