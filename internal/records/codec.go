package records

import (
	"encoding/json"
	"fmt"
	"net"

	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// TypedValue keeps a Go value's type across JSON, so option maps read back
// from the store are what the caller passed in (an int stays an int, a
// []types.PortBinding stays one) and drivers parse them the same way.
type TypedValue struct {
	T string          `json:"t"`
	V json.RawMessage `json:"v"`
}

// EncodeGeneric turns an option map into typed values. Values of types it
// does not know are kept as plain JSON ("json"), which is lossy only for
// types no caller of this library is known to pass.
func EncodeGeneric(m map[string]any) (map[string]TypedValue, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]TypedValue, len(m))
	for k, v := range m {
		tv, err := encodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("option %s: %w", k, err)
		}
		out[k] = tv
	}
	return out, nil
}

func encodeValue(v any) (TypedValue, error) {
	var t string
	switch x := v.(type) {
	case nil:
		t = "nil"
	case string:
		t = "string"
	case bool:
		t = "bool"
	case int:
		t = "int"
	case int64:
		t = "int64"
	case uint16:
		t = "uint16"
	case float64:
		t = "float64"
	case []string:
		t = "[]string"
	case map[string]string:
		t = "map[string]string"
	case net.HardwareAddr:
		t, v = "mac", x.String()
	case net.IP:
		t, v = "ip", x.String()
	case []types.PortBinding:
		t = "[]PortBinding"
	case []types.TransportPort:
		t = "[]TransportPort"
	case options.Generic:
		enc, err := EncodeGeneric(x)
		if err != nil {
			return TypedValue{}, err
		}
		t, v = "Generic", enc
	case map[string]any:
		enc, err := EncodeGeneric(x)
		if err != nil {
			return TypedValue{}, err
		}
		t, v = "map[string]any", enc
	default:
		t = "json"
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return TypedValue{}, err
	}
	return TypedValue{T: t, V: raw}, nil
}

// DecodeGeneric turns typed values back into the option map EncodeGeneric
// was given.
func DecodeGeneric(m map[string]TypedValue) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]any, len(m))
	for k, tv := range m {
		v, err := decodeValue(tv)
		if err != nil {
			return nil, fmt.Errorf("option %s: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

func decodeValue(tv TypedValue) (any, error) {
	switch tv.T {
	case "nil":
		return nil, nil
	case "string":
		return decodeAs[string](tv.V)
	case "bool":
		return decodeAs[bool](tv.V)
	case "int":
		return decodeAs[int](tv.V)
	case "int64":
		return decodeAs[int64](tv.V)
	case "uint16":
		return decodeAs[uint16](tv.V)
	case "float64":
		return decodeAs[float64](tv.V)
	case "[]string":
		return decodeAs[[]string](tv.V)
	case "map[string]string":
		return decodeAs[map[string]string](tv.V)
	case "[]TransportPort":
		return decodeAs[[]types.TransportPort](tv.V)
	case "mac":
		s, err := decodeAs[string](tv.V)
		if err != nil {
			return nil, err
		}
		return net.ParseMAC(s)
	case "ip":
		s, err := decodeAs[string](tv.V)
		return to4(net.ParseIP(s)), err
	case "[]PortBinding":
		pbs, err := decodeAs[[]types.PortBinding](tv.V)
		for i := range pbs {
			pbs[i].IP, pbs[i].HostIP = to4(pbs[i].IP), to4(pbs[i].HostIP)
		}
		return pbs, err
	case "Generic", "map[string]any":
		m, err := decodeAs[map[string]TypedValue](tv.V)
		if err != nil {
			return nil, err
		}
		d, err := DecodeGeneric(m)
		if tv.T == "Generic" {
			return options.Generic(d), err
		}
		return d, err
	default:
		return decodeAs[any](tv.V)
	}
}

// decodeAs unmarshals raw into a fresh T.
func decodeAs[T any](raw json.RawMessage) (T, error) {
	var v T
	err := json.Unmarshal(raw, &v)
	return v, err
}

// to4 gives IPv4 addresses their 4-byte form, as callers usually build them.
func to4(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}
