// Package dns tests the embedded DNS resolver of bridge sandboxes: names,
// aliases, upstream forwarding and the redirect rules, over real namespaces.
package dns
