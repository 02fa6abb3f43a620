package bench

import (
	"path/filepath"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// benchOptions are the options of every benchmark's controller: it runs in
// host, and every path it reads or writes (ExecRoot, DataDir, the plugin
// directory) is under dir, so a benchmark sees nothing of the machine's
// (no plugin under /run/docker/plugins). opts come last and win.
func benchOptions(host *testutil.HostNS, dir string, opts ...config.Option) []config.Option {
	return append([]config.Option{
		config.OptionHostNetNS(host.Path()),
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
	}, opts...)
}
