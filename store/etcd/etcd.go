package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/opencnm/libnetwork/globalstore"
)

// Name is the provider's registered name.
const Name = "etcd"

func init() { globalstore.Register(Name, Open) }

// DefaultDialTimeout bounds connecting when Config.DialTimeout is zero.
const DefaultDialTimeout = 5 * time.Second

// Open connects to the etcd cluster c describes. It does not wait for the
// cluster: a store that is down at start fails the calls that need it, not
// the controller's start.
func Open(c globalstore.Config) (globalstore.KV, error) {
	if len(c.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	cfg := clientv3.Config{
		Endpoints:            c.Endpoints,
		TLS:                  c.TLS,
		DialTimeout:          c.DialTimeout,
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if c.Dialer != nil {
		d := c.Dialer
		cfg.DialOptions = append(cfg.DialOptions, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			network, addr := dialTarget(addr)
			return d(ctx, network, addr)
		}))
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: connect to %v: %w", c.Endpoints, err)
	}
	return New(cli), nil
}

// dialTarget turns what gRPC hands a custom dialer (the endpoint as
// configured, "unix:///path" or "https://host:port", or a bare host:port)
// into a network and an address.
func dialTarget(target string) (network, addr string) {
	for _, p := range []string{"unix://", "unixs://", "unix:", "unixs:"} {
		if rest, ok := strings.CutPrefix(target, p); ok {
			return "unix", rest
		}
	}
	for _, p := range []string{"https://", "http://"} {
		if rest, ok := strings.CutPrefix(target, p); ok {
			return "tcp", rest
		}
	}
	return "tcp", target
}

// New wraps a client the program built itself; Close closes it.
func New(cli *clientv3.Client) *KV { return &KV{cli: cli} }

// KV is the etcd implementation of globalstore.KV and Compactor.
type KV struct{ cli *clientv3.Client }

var (
	_ globalstore.KV        = (*KV)(nil)
	_ globalstore.Compactor = (*KV)(nil)
)

// Client is the underlying etcd client.
func (k *KV) Client() *clientv3.Client { return k.cli }

// Close closes the client; leases live on until they expire.
func (k *KV) Close() error { return k.cli.Close() }
