package testrig

import (
	"github.com/opencnm/libnetwork/types"
)

func TCP(port, hostPort uint16) types.PortBinding {
	return types.PortBinding{Proto: types.TCP, Port: port, HostPort: hostPort}
}
