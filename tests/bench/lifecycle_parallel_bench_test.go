package bench

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// lifecycleWorkers are the worker counts of the parallel mode.
var lifecycleWorkers = []int{1, 4, 16}

// benchParallelLifecycle is the parallel mode of BenchmarkContainerLifecycle:
// workers goroutines share one controller and one bridge network, and each
// takes containers one at a time through their whole life (create
// endpoint, new sandbox, join, leave, delete sandbox, delete endpoint)
// until N have run. The floor does the same kernel work (floorRig) with
// the same number of workers. Each iteration runs both, in alternating
// order; the medians over iterations are reported.
func benchParallelLifecycle(b *testing.B, workers int) {
	n := lifecycleN()
	var ctl, floor, ratio []float64
	for i := 0; i < b.N; i++ {
		var c, f float64
		if i%2 == 0 {
			c, f = parallelController(b, n, workers), parallelFloor(b, n, workers)
		} else {
			f, c = parallelFloor(b, n, workers), parallelController(b, n, workers)
		}
		ctl, floor, ratio = append(ctl, c), append(floor, f), append(ratio, c/f)
	}
	b.Logf("N=%d, %d workers on one bridge network: %.0f containers/s, floor (bare netlink) %.0f containers/s, %.2f of the floor",
		n, workers, median(ctl), median(floor), median(ratio))
	b.ReportMetric(median(ctl), "containers/s")
	b.ReportMetric(median(floor), "floor-containers/s")
	b.ReportMetric(median(ratio), "of-floor")
}

// median is the middle of xs, the mean of the middle two for an even
// count (of two runs in opposite orders, neither order's alone).
func median(xs []float64) float64 {
	c := slices.Clone(xs)
	slices.Sort(c)
	m := len(c) / 2
	if len(c)%2 == 0 {
		return (c[m-1] + c[m]) / 2
	}
	return c[m]
}

// parallelController returns the controller's containers per second.
func parallelController(b *testing.B, n, workers int) float64 {
	c, nw, done := benchBridge(b, "10.202.0.0/16")
	defer done()
	d, err := runWorkers(n, workers, func(_, i int) error {
		name := fmt.Sprintf("p%d", i)
		ep, err := nw.CreateEndpoint(name)
		if err != nil {
			return err
		}
		sb, err := c.NewSandbox(name)
		if err != nil {
			return err
		}
		if err := ep.Join(sb); err != nil {
			return err
		}
		if err := ep.Leave(sb); err != nil {
			return err
		}
		if err := sb.Delete(); err != nil {
			return err
		}
		return ep.Delete(false)
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / d.Seconds()
}

// parallelFloor returns the floor's containers per second. Each worker
// has its own netlink socket in the host namespace, so the floor is not
// held back by requests queueing on one socket.
func parallelFloor(b *testing.B, n, workers int) float64 {
	r := newFloorRig(b)
	hosts := make([]*netlink.Handle, workers)
	for w := range hosts {
		h, err := netlink.NewHandleAt(r.host.Handle())
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		hosts[w] = h
	}
	d, err := runWorkers(n, workers, func(w, i int) error {
		fc, err := r.up(hosts[w], i)
		if err != nil {
			return err
		}
		return r.down(fc)
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / d.Seconds()
}

// runWorkers calls one(w, i) for every i in [0, n), from workers
// goroutines (w is the caller's index) each taking the next i when done
// with its last. It returns the wall time and the first error, after
// which no new i is started.
func runWorkers(n, workers int, one func(w, i int) error) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	t0 := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := one(w, i); err != nil {
					errs <- fmt.Errorf("container %d: %w", i, err)
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	close(errs)
	return d, <-errs
}
