# Two commands set a newcomer up on a fresh Debian machine, as root:
#   make example   runs the README example (in a throwaway network namespace)
#   make test      installs what the tests need, then vet, gofmt, the import
#                  grouping check (goimports, fetched pinned) and go test -race
GO       ?= go
# The race runtime sleeps 1 s at exit by default; that is per package, for nothing.
export GORACE ?= atexit_sleep_ms=0
LEAKCHECK ?= $(firstword $(wildcard ../shared/tools/leakcheck /work/shared/tools/leakcheck))
BENCHTIME ?= 1x
# Test binaries run this many at once (go test's default is GOMAXPROCS):
# the area tests under tests/ mostly wait on the kernel and timers, not on
# the CPU, so four at once on two cores cut the wall time without starving
# the timing bounds (which are generous: the machine may be shared).
TESTP ?= 4
# Imports stand in three groups: stdlib, third-party, then this module's own
# packages. goimports is pinned and run from the module proxy, so the check
# needs nothing but Go and touches neither go.mod nor go.sum.
GOIMPORTS ?= $(GO) run golang.org/x/tools/cmd/goimports@v0.52.0
LOCAL_PREFIX := github.com/opencnm/libnetwork
GOFILES = $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

# Go modules of the repository: the core, and the etcd provider, its own
# module so the etcd client stays out of the core's build (docs/globalstore.md).
MODULES  := . store/etcd
# Where deps unpacks Debian's etcd-server for the global-store tests
# (internal/etcdproc.DefaultBinary): unpacked, not installed, since
# installing the package starts a system etcd.
ETCD_DIR ?= /opt/opencnm/etcd-server
# The etcd tests find the binary there (internal/etcdproc.Binary).
export OPENCNM_ETCD ?= $(ETCD_DIR)/usr/bin/etcd
# Every module's tests, as unit and test run them.
GOTEST = set -e; for m in $(MODULES); do (cd $$m && $(GO) test -race -count=1 -p $(TESTP) ./...); done

.PHONY: all build deps test vet fmt-check imports-check imports unit example bench clean

all: build

build:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) build ./...); done

# System packages the privileged tests drive (iproute2 for debugging, the
# iptables binaries the firewall execs, conntrack for flushing mappings,
# nft to look at the published ports' table as nft shows it, runc and a
# static busybox for the test that runs a real container), and the etcd
# binary the global-store tests start as their own child processes.
deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	   ! { command -v iptables-restore && command -v ip && command -v conntrack && command -v nft && \
	       command -v runc && [ -x /bin/busybox ]; } >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iptables conntrack nftables runc busybox-static >/dev/null; \
	fi
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ ! -x $(ETCD_DIR)/usr/bin/etcd ]; then \
		d=$$(mktemp -d) && chmod 755 $$d && (cd $$d && apt-get download -qq etcd-server || { apt-get update -qq && apt-get download -qq etcd-server; }) && \
		mkdir -p $(ETCD_DIR) && dpkg-deb -x $$d/etcd-server_*.deb $(ETCD_DIR); rc=$$?; rm -rf $$d; exit $$rc; \
	fi

vet:
	@set -e; for m in $(MODULES); do echo "go vet ($$m)"; (cd $$m && $(GO) vet ./...); done

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Fails listing the files whose imports are not grouped (or not goimports-
# formatted); `make imports` rewrites them. A goimports that cannot be
# fetched or run fails the check rather than passing it silently.
imports-check:
	@out=$$($(GOIMPORTS) -local $(LOCAL_PREFIX) -l $(GOFILES)) || exit 1; \
	if [ -n "$$out" ]; then echo "imports need grouping (stdlib / third-party / $(LOCAL_PREFIX)); run make imports:"; echo "$$out"; exit 1; fi

imports:
	$(GOIMPORTS) -local $(LOCAL_PREFIX) -w $(GOFILES)

unit:
	@$(GOTEST)

test: deps vet fmt-check imports-check
	@if [ -z "$(LEAKCHECK)" ]; then echo "NOTE: leakcheck not found (../shared/tools/leakcheck): the leftover check after the suite is SKIPPED"; fi
	@if [ -n "$(LEAKCHECK)" ]; then $(LEAKCHECK) save /tmp/opencnm-leak-baseline >/dev/null; fi
	@$(GOTEST)
	@if [ -n "$(LEAKCHECK)" ]; then rc=0; $(LEAKCHECK) /tmp/opencnm-leak-baseline || rc=$$?; rm -f /tmp/opencnm-leak-baseline; exit $$rc; fi

# The README example, run inside a private network and mount namespace so the
# machine's own network is untouched; it cleans up after itself and can be
# run again and again.
# The mount points it needs are removed again if it made them.
example: deps
	@bin=$$(mktemp -d) && $(GO) build -o $$bin/readme-example ./cmd/readme-example && \
	made=; for d in /run/libnetwork /var/lib/libnetwork; do \
		[ -d $$d ] || { mkdir -p $$d && made="$$made $$d"; }; done; \
	unshare --net --mount --propagation private sh -c '\
		mount -t tmpfs tmpfs /run/libnetwork && mount -t tmpfs tmpfs /var/lib/libnetwork && \
		ip link set lo up && '$$bin'/readme-example && '$$bin'/readme-example'; \
	rc=$$?; rm -rf $$bin; [ -z "$$made" ] || rmdir $$made; exit $$rc

bench: deps
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...); done

clean:
	$(GO) clean -testcache
