package testrig

// Link aliases the bridge driver tags its bridges and host veths with.
const (
	NetTag = "opencnm:net:"
	EpTag  = "opencnm:ep:"
)
