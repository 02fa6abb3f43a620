// Package firewall tests the bridge's firewall in real namespaces: rules
// healing after a flush or a firewalld reload, legacy iptables, forwarding
// holes and hairpin traffic over loopback.
package firewall
