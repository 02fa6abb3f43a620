package firewall

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// Sysctl reads and writes keys under /proc/sys of one network namespace.
// Keys are slash-separated paths below /proc/sys, e.g. "net/ipv4/ip_forward".
type Sysctl interface {
	Get(key string) (string, error)
	Set(key, value string) error
}

// NSSysctl is the Sysctl of a namespace: /proc/sys/net shows the network
// namespace of the thread that opens it, so each access runs inside NS.Do.
type NSSysctl struct {
	NS *netnsutil.NS
}

// Get returns the key's value without the trailing newline.
func (s NSSysctl) Get(key string) (string, error) {
	var v string
	err := s.NS.Do(func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", key))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", types.InternalErrorf("reading sysctl %s in %s: %w", key, s.NS.Path(), err)
	}
	return v, nil
}

// Set writes value to the key.
func (s NSSysctl) Set(key, value string) error {
	err := s.NS.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
	if err != nil {
		return types.InternalErrorf("writing sysctl %s=%s in %s: %w", key, value, s.NS.Path(), err)
	}
	return nil
}

// Sysctl keys the bridge setup touches.
const (
	keyIPv4Forward    = "net/ipv4/ip_forward"
	keyIPv6ForwardAll = "net/ipv6/conf/all/forwarding"
	keyIPv6ForwardDef = "net/ipv6/conf/default/forwarding"
)

// EnableIPForwarding turns on IPv4 forwarding (and IPv6 forwarding with
// ipv6) in the namespace. Only when it flipped a family's forwarding from
// 0 itself does it also set that family's FORWARD policy to DROP (through
// fw; nil fw means iptables is off), so that turning forwarding on does not
// make the host a router for everyone; a machine that already forwarded
// keeps its policy. If setting the policy fails, forwarding is turned back
// off. It reports which families it flipped.
func EnableIPForwarding(sys Sysctl, fw *Firewall, ipv6 bool) (flipped []Family, err error) {
	type fwd struct {
		fam  Family
		keys []string
	}
	todo := []fwd{{IPv4, []string{keyIPv4Forward}}}
	if ipv6 {
		todo = append(todo, fwd{IPv6, []string{keyIPv6ForwardDef, keyIPv6ForwardAll}})
	}
	for _, f := range todo {
		cur, err := sys.Get(f.keys[len(f.keys)-1])
		if err != nil {
			return flipped, types.Wrapf(err, "enabling %s forwarding", f.fam)
		}
		if cur != "0" {
			continue
		}
		if err := setAll(sys, f.keys, "1"); err != nil {
			return flipped, types.Wrapf(err, "enabling %s forwarding", f.fam)
		}
		if fw != nil && (f.fam == IPv4 || fw.IPv6()) {
			if err := fw.setForwardPolicy(f.fam, "DROP"); err != nil {
				return flipped, errors.Join(types.Wrapf(err, "enabling %s forwarding", f.fam), setAll(sys, f.keys, "0"))
			}
		}
		flipped = append(flipped, f.fam)
	}
	return flipped, nil
}

func setAll(sys Sysctl, keys []string, v string) error {
	for _, k := range keys {
		if err := sys.Set(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (fw *Firewall) setForwardPolicy(fam Family, policy string) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	var t tx
	t.policy(fam, TableFilter, chainForward, policy)
	if err := fw.commitLocked(t.ops, true); err != nil {
		return err
	}
	fw.policies[chainKey{fam, TableFilter, chainForward}] = policy
	return nil
}

// SetRouteLocalnet sets net.ipv4.conf.<bridge>.route_localnet=1: without
// it the kernel drops DNATed packets whose source is 127.0.0.1 once they
// are routed out of the bridge, so published ports would not answer on the
// host's loopback.
func SetRouteLocalnet(sys Sysctl, bridge string) error {
	return sys.Set("net/ipv4/conf/"+bridge+"/route_localnet", "1")
}

// EnableBridgeNetfilter makes bridged (same-bridge) traffic traverse
// iptables, which the ICC DROP rule needs to have any effect. It is a no-op
// where br_netfilter is not available (the keys do not exist); a network
// whose isolation depends on it uses RequireBridgeNetfilter instead.
func EnableBridgeNetfilter(sys Sysctl, ipv6 bool) error {
	for _, k := range bridgeNetfilterKeys(ipv6) {
		if v, err := sys.Get(k); err != nil || v == "1" {
			continue // absent: nothing to do
		}
		if err := sys.Set(k, "1"); err != nil {
			return err
		}
	}
	return nil
}

func bridgeNetfilterKeys(ipv6 bool) []string {
	keys := []string{"net/bridge/bridge-nf-call-iptables"}
	if ipv6 {
		keys = append(keys, "net/bridge/bridge-nf-call-ip6tables")
	}
	return keys
}

// BridgeNetfilterModule is the kernel module that makes bridged traffic
// traverse iptables; its sysctl keys exist only once it is loaded.
const BridgeNetfilterModule = "br_netfilter"

// LoadModule loads a kernel module with modprobe. Modules are global to
// the machine, not to a namespace.
func LoadModule(name string) error {
	out, err := exec.Command("modprobe", "--", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RequireBridgeNetfilter is EnableBridgeNetfilter for a network whose
// isolation depends on it (ICC off): where the keys are absent it loads
// br_netfilter through load (LoadModule, as moby does) and looks again;
// if they are still absent, or cannot be set, it fails (NotImplemented
// when the kernel lacks the feature), so that no network is made whose
// ICC DROP would silently do nothing.
func RequireBridgeNetfilter(sys Sysctl, load func(name string) error, ipv6 bool) error {
	keys := bridgeNetfilterKeys(ipv6)
	if _, err := sys.Get(keys[0]); errors.Is(err, fs.ErrNotExist) {
		lerr := load(BridgeNetfilterModule)
		if _, err := sys.Get(keys[0]); errors.Is(err, fs.ErrNotExist) {
			return types.NotImplementedErrorf("bridge netfilter (%s) is not available, needed to isolate containers on one bridge: %w",
				BridgeNetfilterModule, errors.Join(err, lerr))
		}
	}
	for _, k := range keys {
		v, err := sys.Get(k)
		if err != nil {
			return types.Wrapf(err, "enabling bridge netfilter")
		}
		if v == "1" {
			continue
		}
		if err := sys.Set(k, "1"); err != nil {
			return types.Wrapf(err, "enabling bridge netfilter")
		}
	}
	return nil
}
