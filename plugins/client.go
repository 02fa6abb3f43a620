package plugins

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/types"
)

// MediaType is what requests are sent as and what replies are accepted as.
// Plugins may answer with an older v1 media type; the body is JSON either way.
const MediaType = "application/vnd.docker.plugins.v1.2+json"

// maxErrBody bounds how much of a failed reply is read for its message.
const maxErrBody = 64 << 10

// maxReply bounds a 200 reply. The largest legitimate ones (an
// EndpointOperInfo Value map, an IPAM reply's Data) are a few KiB; decoded
// into interface values a JSON body can take ~20 times its size in
// memory, so 1 MiB keeps what one hostile or broken plugin can make a call
// cost to tens of MiB while leaving real replies orders of magnitude of
// room. A reply over the cap fails the call as Internal: the plugin broke
// the protocol, the caller did nothing wrong.
const maxReply = 1 << 20

// maxReplyHeader bounds a reply's header block.
const maxReplyHeader = 64 << 10

// errReplyTooLarge is what capReader returns past the cap.
var errReplyTooLarge = errors.New("reply too large")

// capReader passes at most n bytes through, then fails with
// errReplyTooLarge, so a decoder reading from it stops at the cap instead
// of buffering whatever the plugin keeps sending (io.LimitReader would
// report a clean EOF, indistinguishable from a truncated reply).
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errReplyTooLarge
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

// PluginError is a failure the plugin reported itself: a non-200 status, or
// an error field in a 200 reply. Its text is the plugin's message; callers
// see it as "remote: <message>".
type PluginError struct {
	Plugin string
	Method string // Interface.Method
	Status int    // HTTP status of the reply
	Msg    string
}

func (e *PluginError) Error() string { return e.Msg }

// Client calls one plugin. It is safe for concurrent use.
type Client struct {
	spec    Spec
	timeout time.Duration
	base    string // scheme://host prefix of every request URL
	http    *http.Client

	mu         sync.Mutex
	implements []string // guarded by mu; set by Activate
}

// NewClient returns a client for spec whose calls each take at most timeout
// (retries included). It does not contact the plugin; see Activate.
func NewClient(spec *Spec, timeout time.Duration) (*Client, error) {
	if timeout <= 0 {
		return nil, types.BadRequestErrorf("new plugin client %q: timeout must be positive", spec.Name)
	}
	if err := checkAddr(spec.Addr); err != nil {
		return nil, types.BadRequestErrorf("new plugin client %q: %w", spec.Name, err)
	}
	u, _ := url.Parse(spec.Addr) // checked above
	// Keep-alives are off: plugin calls are rare, and a fresh connection per
	// call means a restarted plugin never meets a stale pooled connection
	// (a POST on one cannot be replayed safely) and no idle connection
	// outlives the client.
	//
	// Reply headers are capped like bodies (maxReply): a plugin sends a
	// handful, and net/http would otherwise take 10 MiB of them.
	tr := &http.Transport{DisableKeepAlives: true, MaxResponseHeaderBytes: maxReplyHeader}
	c := &Client{spec: *spec, timeout: timeout}
	switch u.Scheme {
	case "unix":
		path := u.Path
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		// The host part is only a label: every connection goes to the socket.
		c.base = "http://plugin"
	case "tcp", "http":
		c.base = "http://" + u.Host
	case "https":
		cfg, err := tlsClientConfig(spec.TLSConfig)
		if err != nil {
			return nil, types.BadRequestErrorf("new plugin client %q: %w", spec.Name, err)
		}
		tr.TLSClientConfig = cfg
		c.base = "https://" + u.Host
	}
	c.http = &http.Client{Transport: tr}
	return c, nil
}

func tlsClientConfig(tc *TLSConfig) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tc == nil {
		return cfg, nil
	}
	cfg.InsecureSkipVerify = tc.InsecureSkipVerify
	if tc.CAFile != "" {
		pem, err := os.ReadFile(tc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in CA file %s", tc.CAFile)
		}
		cfg.RootCAs = pool
	}
	if tc.CertFile != "" || tc.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(tc.CertFile, tc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Name is the plugin's name.
func (c *Client) Name() string { return c.spec.Name }

// Addr is the URL the plugin is reached at.
func (c *Client) Addr() string { return c.spec.Addr }

// Implements reports whether the plugin's handshake listed iface
// (for example "NetworkDriver" or "IpamDriver").
func (c *Client) Implements(iface string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.implements, iface)
}

// activateResponse is the reply to Plugin.Activate.
type activateResponse struct {
	Implements []string
}

// Activate performs the Plugin.Activate handshake and returns the interfaces
// the plugin implements. Like every call it retries while the plugin cannot
// be reached, for at most the client's timeout.
func (c *Client) Activate() ([]string, error) {
	var resp activateResponse
	if err := c.Call("Plugin.Activate", nil, &resp); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.implements = slices.Clone(resp.Implements)
	c.mu.Unlock()
	return resp.Implements, nil
}

// Call POSTs req as JSON to /<method> (method is "Interface.Method") and
// decodes a 200 reply into resp (either may be nil). The whole call,
// including retries, takes at most the client's timeout.
//
// Errors carry a class: the plugin answering 404 is NotImplemented; any
// other non-200 reply is Internal and wraps a *PluginError with the message
// from the body's "Err" (or "Error") field; no answer in time (the socket
// refusing connections all along, or the reply not arriving) is Timeout; a
// connection lost mid-call is Internal. Connection attempts are retried with
// backoff because nothing was sent; a request that was sent is never resent,
// as plugin calls are not idempotent.
func (c *Client) Call(method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return types.BadRequestErrorf("plugin %s: %s: encode request: %w", c.spec.Name, method, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	backoff := 10 * time.Millisecond
	for {
		r, err := c.do(ctx, method, body)
		if err == nil {
			defer r.Body.Close()
			return c.decode(ctx, method, r, resp)
		}
		if ctx.Err() != nil || isTimeout(err) {
			return types.TimeoutErrorf("plugin %s: %s: no answer within %s: %w", c.spec.Name, method, c.timeout, err)
		}
		if !isDialError(err) {
			return types.InternalErrorf("plugin %s: %s: %w", c.spec.Name, method, err)
		}
		// The plugin is not listening (yet, or any more): wait and retry.
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return types.TimeoutErrorf("plugin %s: %s: not reachable within %s: %w", c.spec.Name, method, c.timeout, err)
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (c *Client) do(ctx context.Context, method string, body []byte) (*http.Response, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+method, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Accept", MediaType)
	hr.Header.Set("Content-Type", MediaType)
	return c.http.Do(hr)
}

// errorBody holds both spellings of a reply's error field: network plugins
// use "Err", IPAM plugins "Error".
type errorBody struct {
	Err   string
	Error string
}

func (c *Client) decode(ctx context.Context, method string, r *http.Response, resp any) error {
	if r.StatusCode != http.StatusOK {
		data, err := io.ReadAll(io.LimitReader(r.Body, maxErrBody))
		if err != nil {
			return c.readErr(ctx, method, err)
		}
		pe := &PluginError{Plugin: c.spec.Name, Method: method, Status: r.StatusCode, Msg: errorMessage(r.StatusCode, data)}
		if r.StatusCode == http.StatusNotFound {
			return types.NotImplementedErrorf("plugin %s does not implement %s: %w", c.spec.Name, method, pe)
		}
		return types.InternalErrorf("remote: %w", pe)
	}
	if resp == nil {
		return nil
	}
	// Decoded as it streams in, through the cap: memory stays bounded
	// however much the plugin sends.
	if err := json.NewDecoder(&capReader{r: r.Body, n: maxReply}).Decode(resp); err != nil && !errors.Is(err, io.EOF) {
		return c.readErr(ctx, method, err)
	}
	return nil
}

// readErr classifies a failure while reading a reply: past the cap is
// Internal, the deadline passing while the reply still arrives is Timeout,
// anything else (a connection cut, malformed JSON) is Internal.
func (c *Client) readErr(ctx context.Context, method string, err error) error {
	switch {
	case errors.Is(err, errReplyTooLarge):
		return types.InternalErrorf("plugin %s: %s: reply larger than %d bytes", c.spec.Name, method, maxReply)
	case ctx.Err() != nil || isTimeout(err):
		return types.TimeoutErrorf("plugin %s: %s: reply not complete within %s: %w", c.spec.Name, method, c.timeout, err)
	}
	return types.InternalErrorf("plugin %s: %s: decode reply: %w", c.spec.Name, method, err)
}

// errorMessage picks the plugin's own words out of a failed reply.
func errorMessage(status int, data []byte) string {
	var eb errorBody
	if json.Unmarshal(data, &eb) == nil {
		if eb.Err != "" {
			return eb.Err
		}
		if eb.Error != "" {
			return eb.Error
		}
	}
	if msg := strings.TrimSpace(string(data)); msg != "" {
		return msg
	}
	return http.StatusText(status)
}

// ReportedError turns an error field of a 200 reply (a network plugin's
// "Err", an IPAM plugin's "Error") into an Internal error reading
// "remote: <msg>", the same shape as a failure status. It returns nil for an
// empty msg.
func (c *Client) ReportedError(method, msg string) error {
	if msg == "" {
		return nil
	}
	return types.InternalErrorf("remote: %w", &PluginError{Plugin: c.spec.Name, Method: method, Status: http.StatusOK, Msg: msg})
}

// Close releases the client's connections. Calls after Close still work;
// they open new connections.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// isDialError reports whether err happened before anything was sent.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
