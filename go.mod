module github.com/opencnm/libnetwork

go 1.26.0

require (
	github.com/miekg/dns v1.1.73
	github.com/vishvananda/netlink v1.3.1
	github.com/vishvananda/netns v0.0.5
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.49.0
)

require golang.org/x/net v0.57.0 // indirect
