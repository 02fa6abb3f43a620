module github.com/opencnm/libnetwork

go 1.26.0

require (
	github.com/vishvananda/netlink v1.3.1
	github.com/vishvananda/netns v0.0.5
	golang.org/x/sys v0.49.0
)

require go.etcd.io/bbolt v1.5.0 // indirect
