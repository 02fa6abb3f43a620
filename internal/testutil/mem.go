package testutil

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Growth is how much memory a function cost the process.
type Growth struct {
	// PeakRSS is the highest resident set size seen while the function
	// ran, less the resident size before it (the kernel's VmHWM, reset
	// through /proc/self/clear_refs first; 0 where it cannot be reset).
	PeakRSS uint64
	// Alloc is the bytes the Go heap handed out meanwhile (TotalAlloc),
	// by every goroutine of the process: freed or not, so it does not
	// depend on when the collector ran.
	Alloc uint64
}

// MeasureGrowth runs f and reports what it cost in memory. Both figures
// count the whole process, so a test compares them with a generous bound.
func MeasureGrowth(t testing.TB, f func()) Growth {
	t.Helper()
	runtime.GC()
	// "5" resets the peak resident size to the current one (Linux 4.0+);
	// it changes nothing but this process's own accounting. Where that is
	// not possible the peak would be an earlier one: PeakRSS stays 0.
	resetPeak := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	if !resetPeak {
		t.Log("peak RSS cannot be reset here; only heap allocation is measured")
	}
	var before, after runtime.MemStats
	rss := procStatus(t, "VmRSS")
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	peak := procStatus(t, "VmHWM")
	g := Growth{Alloc: after.TotalAlloc - before.TotalAlloc}
	if resetPeak && peak > rss {
		g.PeakRSS = peak - rss
	}
	return g
}

// procStatus returns a "kB" field of /proc/self/status in bytes.
func procStatus(t testing.TB, field string) uint64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("parsing %s %q: %v", field, rest, err)
		}
		return kb << 10
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
