// Package remote tests remote network and IPAM plugins served over unix
// sockets and TCP: the protocol, capabilities, errors, limits and restarts.
//
// The tests that bound how long a call waits for a plugin (remote_errors)
// run alone; the others run in parallel.
package remote
