// Package bridgeflow tests a bridge network's life in real namespaces:
// create, join, leave and delete with dual stack, links, multiple networks,
// names and tags of kernel objects, runtime files, SetKey and a runc container.
package bridgeflow
