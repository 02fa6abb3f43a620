// Package macaddr makes MAC addresses for interfaces the library creates.
package macaddr

import (
	"crypto/rand"
	"net"
)

// Random returns a random unicast, locally administered MAC.
func Random() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac) // crypto/rand.Read never fails on Linux
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}
