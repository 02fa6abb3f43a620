// Package restart tests a controller's restart over the same state:
// networks, sandboxes and ports come back, lost kernel state is rebuilt, and
// leftovers are collected on demand.
package restart
