// Package testrig is the shared rig of the privileged area tests under
// tests/: a controller in a throwaway host namespace with its state in
// t.TempDir(), one TCP/UDP echo server and client, a port rig, DNS and
// kernel inspection helpers, and a remote plugin server over plugintest.
package testrig
