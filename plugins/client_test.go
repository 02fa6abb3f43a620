package plugins_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opencnm/libnetwork/plugins"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

// get activates the plugin served by h under name in a fresh directory.
func get(t *testing.T, h plugintest.Handler, timeout time.Duration) (*plugins.Client, *plugintest.Server) {
	t.Helper()
	dir := plugintest.Dir(t)
	srv := plugintest.ServeUnix(t, filepath.Join(dir, "p.sock"), h)
	reg := plugins.NewRegistry([]string{dir}, timeout)
	t.Cleanup(func() { reg.Close() })
	c, err := reg.Get("p", "NetworkDriver")
	require.NoError(t, err)
	return c, srv
}

func TestCallReplies(t *testing.T) {
	h := sdk.NewHandler(netManifest)
	h.HandleFunc("/NetworkDriver.Fail", func(w http.ResponseWriter, r *http.Request) {
		sdk.EncodeResponse(w, map[string]string{"Err": "no such vlan"}, true)
	})
	h.HandleFunc("/NetworkDriver.FailIPAMStyle", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"Error": "pool exhausted"}`)
	})
	h.HandleFunc("/NetworkDriver.FailText", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "plain text trouble", http.StatusInternalServerError)
	})
	h.HandleFunc("/NetworkDriver.Empty", func(w http.ResponseWriter, r *http.Request) {})
	h.HandleFunc("/NetworkDriver.Garbage", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "{not json")
	})
	c, _ := get(t, h, 5*time.Second)

	err := c.Call("NetworkDriver.Missing", nil, nil)
	assert.True(t, types.IsNotImplemented(err), "404 is NotImplemented: %v", err)

	err = c.Call("NetworkDriver.Fail", nil, nil)
	require.Error(t, err)
	assert.True(t, types.IsInternal(err), "got %v", err)
	assert.Equal(t, "remote: no such vlan", err.Error())
	var pe *plugins.PluginError
	require.True(t, errors.As(err, &pe))
	assert.Equal(t, http.StatusInternalServerError, pe.Status)
	assert.Equal(t, "NetworkDriver.Fail", pe.Method)
	assert.Equal(t, "p", pe.Plugin)

	err = c.Call("NetworkDriver.FailIPAMStyle", nil, nil)
	assert.Equal(t, "remote: pool exhausted", err.Error())
	err = c.Call("NetworkDriver.FailText", nil, nil)
	assert.Equal(t, "remote: plain text trouble", err.Error())

	var out struct{ X int }
	assert.NoError(t, c.Call("NetworkDriver.Empty", nil, &out), "an empty 200 body is an empty reply")
	err = c.Call("NetworkDriver.Garbage", nil, &out)
	assert.True(t, types.IsInternal(err), "got %v", err)

	err = c.Call("NetworkDriver.Empty", map[string]any{"f": func() {}}, nil)
	assert.True(t, types.IsBadRequest(err), "unencodable request: %v", err)

	assert.NoError(t, c.ReportedError("NetworkDriver.Join", ""))
	err = c.ReportedError("NetworkDriver.Join", "boom")
	assert.Equal(t, "remote: boom", err.Error())
	assert.True(t, types.IsInternal(err))
}

func TestPluginDiesMidCall(t *testing.T) {
	const timeout = 700 * time.Millisecond
	h := sdk.NewHandler(netManifest)
	inCall := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h.HandleFunc("/NetworkDriver.Slow", func(w http.ResponseWriter, r *http.Request) {
		close(inCall)
		<-release
	})
	c, srv := get(t, h, timeout)

	go func() {
		<-inCall
		srv.Kill()
	}()
	start := time.Now()
	err := c.Call("NetworkDriver.Slow", nil, nil)
	require.Error(t, err)
	assert.True(t, types.IsInternal(err), "a lost connection is Internal: %v", err)
	assert.Less(t, time.Since(start), timeout, "a dead plugin is reported without waiting for the timeout")

	// With the plugin gone the next call finds nobody listening and gives up
	// after the bound.
	start = time.Now()
	err = c.Call("NetworkDriver.Slow", nil, nil)
	require.Error(t, err)
	assert.True(t, types.IsTimeout(err), "got %v", err)
	assert.Less(t, time.Since(start), timeout+time.Second)
}

func TestCallTimeout(t *testing.T) {
	h := sdk.NewHandler(netManifest)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h.HandleFunc("/NetworkDriver.Hang", func(w http.ResponseWriter, r *http.Request) { <-release })
	c, _ := get(t, h, 300*time.Millisecond)
	start := time.Now()
	err := c.Call("NetworkDriver.Hang", nil, nil)
	assert.True(t, types.IsTimeout(err), "got %v", err)
	assert.Less(t, time.Since(start), 2*time.Second)
}

// selfSigned returns a server certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "plugin"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestTLSJSONSpec(t *testing.T) {
	cert, certPEM := selfSigned(t)
	h, _ := echoPlugin(t, "tls")
	srv := plugintest.ServeTLS(t, h, &tls.Config{Certificates: []tls.Certificate{cert}})
	dir := plugintest.Dir(t)
	caFile := filepath.Join(dir, "ca.pem")
	plugintest.WriteFile(t, caFile, certPEM)

	plugintest.WriteJSONSpec(t, filepath.Join(dir, "verified.json"), "verified", srv.Addr, map[string]any{"CAFile": caFile})
	plugintest.WriteJSONSpec(t, filepath.Join(dir, "insecure.json"), "insecure", srv.Addr, nil)
	plugintest.WriteJSONSpec(t, filepath.Join(dir, "strict.json"), "strict", srv.Addr, map[string]any{})

	reg := plugins.NewRegistry([]string{dir}, time.Second)
	t.Cleanup(func() { reg.Close() })
	for _, name := range []string{"verified", "insecure"} {
		c, err := reg.Get(name, "NetworkDriver")
		require.NoError(t, err, name)
		var got echoReply
		require.NoError(t, c.Call("NetworkDriver.Echo", map[string]string{}, &got))
		assert.Equal(t, "tls", got.ID)
	}
	// TLSConfig present without a CA: the system roots do not know our certificate.
	_, err := reg.Get("strict", "NetworkDriver")
	assert.Error(t, err)
}
