package libnetwork

import (
	"fmt"

	"github.com/opencnm/libnetwork/types"
)

// classify makes *err, an error a public call is about to return, itself of
// its class while it still unwraps to its cause: callers written for
// upstream assert the class directly (err.(types.ForbiddenError)). Named
// errors below are classed themselves and come back unchanged.
func classify(err *error) { *err = types.Classed(*err) }

// Named errors with upstream's names, each carrying its class (types.*Error
// marker interfaces), so callers can test either the class or the type.

// ErrNoSuchNetwork is returned when a network cannot be found by name or ID.
type ErrNoSuchNetwork string

func (e ErrNoSuchNetwork) Error() string { return fmt.Sprintf("network %s not found", string(e)) }
func (ErrNoSuchNetwork) NotFound()       {}

// ErrNoSuchEndpoint is returned when an endpoint cannot be found.
type ErrNoSuchEndpoint string

func (e ErrNoSuchEndpoint) Error() string { return fmt.Sprintf("endpoint %s not found", string(e)) }
func (ErrNoSuchEndpoint) NotFound()       {}

// ErrNoSuchSandbox is returned when a sandbox cannot be found.
type ErrNoSuchSandbox string

func (e ErrNoSuchSandbox) Error() string { return fmt.Sprintf("sandbox %s not found", string(e)) }
func (ErrNoSuchSandbox) NotFound()       {}

// ErrInvalidID is returned for an empty or malformed ID.
type ErrInvalidID string

func (e ErrInvalidID) Error() string { return fmt.Sprintf("invalid id: %s", string(e)) }
func (ErrInvalidID) BadRequest()     {}

// ErrInvalidName is returned for an empty or blank name.
type ErrInvalidName string

func (e ErrInvalidName) Error() string { return fmt.Sprintf("invalid name: %q", string(e)) }
func (ErrInvalidName) BadRequest()     {}

// NetworkTypeError is returned when no driver (built-in or plugin) has the
// requested network type.
type NetworkTypeError string

func (e NetworkTypeError) Error() string {
	return fmt.Sprintf("unknown driver %q: no built-in driver and no plugin socket or spec of that name", string(e))
}
func (NetworkTypeError) NotFound() {}

// NetworkNameError is returned when a network name or ID is already in use.
type NetworkNameError string

func (e NetworkNameError) Error() string {
	return fmt.Sprintf("network with name %s already exists", string(e))
}
func (NetworkNameError) Forbidden() {}

// ActiveEndpointsError is returned when deleting a network that still has endpoints.
type ActiveEndpointsError struct {
	name, id string
	count    int
	where    string // of a global network: which endpoints on which hosts
	cause    error
}

func (e *ActiveEndpointsError) Error() string {
	if e.where != "" {
		return fmt.Sprintf("network %s id %s has %d active endpoints: %s", e.name, e.id, e.count, e.where)
	}
	return fmt.Sprintf("network %s id %s has %d active endpoints", e.name, e.id, e.count)
}
func (e *ActiveEndpointsError) Unwrap() error { return e.cause }
func (*ActiveEndpointsError) Forbidden()      {}

// ActiveContainerError is returned when deleting an endpoint that is still joined.
type ActiveContainerError struct{ name, id string }

func (e *ActiveContainerError) Error() string {
	return fmt.Sprintf("endpoint with name %s id %s has active containers", e.name, e.id)
}
func (*ActiveContainerError) Forbidden() {}

// InvalidContainerIDError is returned for an empty container ID.
type InvalidContainerIDError string

func (e InvalidContainerIDError) Error() string {
	return fmt.Sprintf("invalid container id %q", string(e))
}
func (InvalidContainerIDError) BadRequest() {}

// ErrInvalidJoin is returned when Join or Leave is given a nil or foreign sandbox.
type ErrInvalidJoin struct{}

func (ErrInvalidJoin) Error() string {
	return "a valid sandbox must be given to join or leave an endpoint"
}
func (ErrInvalidJoin) BadRequest() {}
