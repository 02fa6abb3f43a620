// Package bench holds the benchmarks of the controller over the real kernel
// (container lifecycle, sandbox delete, port publishing, DNS, firewall
// healing, restart); run them with go test -run '^$' -bench . as root.
package bench
