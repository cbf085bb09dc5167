// Load generator on the engine's own plugin client: github.com/docker/docker/pkg/plugins
// from Debian's golang-github-docker-docker-dev (dockerd 20.10), built offline in GOPATH
// mode. Requests are sent the way volume/drivers/proxy.go sends them (same request
// structs, same per-call timeouts); that file is not in the Debian package, so its shapes
// are restated below. One plugins.Client per target, shared by all workers, as dockerd
// keeps one client per plugin.
//
// Targets are loaded in alternating slices: every round runs each target for `-slice`,
// `-slices` times, in an order rotated per round, so that noise hits all targets alike.
// For each (round, target) it prints calls, seconds, latency percentiles and the CPU the
// target process used (all threads, from /proc/<pid>/task/*/schedstat, nanoseconds).
//
//	loadgen -workload hot|crud|list -workers 4 -slice 250ms -rounds 6 -slices 2 \
//	        -target ours=/path/ours.sock:1234 -target go=/path/go.sock:5678
//	loadgen -workload hot -requests 1000 -target ours=/path/ours.sock:1234
//
// -out FILE writes the JSON there instead of stdout.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/pkg/plugins"
)

// The timeouts of volume/drivers/proxy.go.
const (
	longTimeout  = 2 * time.Minute
	shortTimeout = 1 * time.Minute
)

type nameRequest struct{ Name string }
type createRequest struct {
	Name string
	Opts map[string]string
}
type mountRequest struct{ Name, ID string }
type listRequest struct{}
type errResponse struct{ Err string }
type mountResponse struct {
	Mountpoint string
	Err        string
}
type getResponse struct {
	Volume *struct {
		Name       string
		Mountpoint string
		Status     map[string]interface{}
	}
	Err string
}
type listResponse struct {
	Volumes []struct {
		Name       string
		Mountpoint string
	}
	Err string
}

// proxy is volume/drivers/proxy.go's volumeDriverProxy, one method per call it makes.
type proxy struct{ client *plugins.Client }

func check(method string, callErr error, remote string) error {
	if callErr != nil {
		return fmt.Errorf("%s: %w", method, callErr)
	}
	if remote != "" {
		return fmt.Errorf("%s: %s", method, remote)
	}
	return nil
}

func (p proxy) Create(name string) error {
	var ret errResponse
	err := p.client.CallWithOptions("VolumeDriver.Create", createRequest{name, nil}, &ret, plugins.WithRequestTimeout(longTimeout))
	return check("Create", err, ret.Err)
}
func (p proxy) Remove(name string) error {
	var ret errResponse
	err := p.client.CallWithOptions("VolumeDriver.Remove", nameRequest{name}, &ret, plugins.WithRequestTimeout(shortTimeout))
	return check("Remove", err, ret.Err)
}
func (p proxy) Path(name string) error {
	var ret mountResponse
	err := p.client.CallWithOptions("VolumeDriver.Path", nameRequest{name}, &ret, plugins.WithRequestTimeout(shortTimeout))
	return check("Path", err, ret.Err)
}
func (p proxy) Mount(name, id string) error {
	var ret mountResponse
	err := p.client.CallWithOptions("VolumeDriver.Mount", mountRequest{name, id}, &ret, plugins.WithRequestTimeout(longTimeout))
	if err == nil && ret.Err == "" && ret.Mountpoint == "" {
		return errors.New("Mount: no Mountpoint in the reply")
	}
	return check("Mount", err, ret.Err)
}
func (p proxy) Unmount(name, id string) error {
	var ret errResponse
	err := p.client.CallWithOptions("VolumeDriver.Unmount", mountRequest{name, id}, &ret, plugins.WithRequestTimeout(shortTimeout))
	return check("Unmount", err, ret.Err)
}
func (p proxy) Get(name string) error {
	var ret getResponse
	err := p.client.CallWithOptions("VolumeDriver.Get", nameRequest{name}, &ret, plugins.WithRequestTimeout(shortTimeout))
	if err == nil && ret.Err == "" && (ret.Volume == nil || ret.Volume.Name == "") {
		return fmt.Errorf("Get: reply for %s names no volume", name)
	}
	return check("Get", err, ret.Err)
}
func (p proxy) List(want int) error {
	var ret listResponse
	err := p.client.CallWithOptions("VolumeDriver.List", listRequest{}, &ret, plugins.WithRequestTimeout(shortTimeout))
	if err == nil && ret.Err == "" && len(ret.Volumes) < want {
		return fmt.Errorf("List: %d volumes, expected at least %d", len(ret.Volumes), want)
	}
	return check("List", err, ret.Err)
}

type target struct {
	name   string
	socket string
	pid    int
	proxy  proxy
}

// cpuNanos is the CPU time all threads of pid used so far.
func cpuNanos(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total int64
	for _, task := range tasks {
		data, err := os.ReadFile(task)
		if err != nil {
			continue // a thread that just exited
		}
		fields := strings.Fields(string(data))
		if len(fields) > 0 {
			n, _ := strconv.ParseInt(fields[0], 10, 64)
			total += n
		}
	}
	return total
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cycle runs one script round of the workload for worker w; latencies are appended.
type cycle func(p proxy, w int, record func(time.Time)) error

func workload(name string, listWant int) (cycle, error) {
	switch name {
	case "hot": // container start/stop: Get, Mount, Get, Unmount of the worker's volume
		return func(p proxy, w int, record func(time.Time)) error {
			vol, id := fmt.Sprintf("hot-%d", w), newID()
			steps := []func() error{
				func() error { return p.Get(vol) },
				func() error { return p.Mount(vol, id) },
				func() error { return p.Get(vol) },
				func() error { return p.Unmount(vol, id) },
			}
			return run(steps, record)
		}, nil
	case "crud":
		return func(p proxy, w int, record func(time.Time)) error {
			vol, id := fmt.Sprintf("crud-%d", w), newID()
			steps := []func() error{
				func() error { return p.Create(vol) },
				func() error { return p.Get(vol) },
				func() error { return p.Mount(vol, id) },
				func() error { return p.Path(vol) },
				func() error { return p.Unmount(vol, id) },
				func() error { return p.Remove(vol) },
			}
			return run(steps, record)
		}, nil
	case "list":
		return func(p proxy, w int, record func(time.Time)) error {
			return run([]func() error{func() error { return p.List(listWant) }}, record)
		}, nil
	}
	return nil, fmt.Errorf("unknown workload %q", name)
}

func run(steps []func() error, record func(time.Time)) error {
	for _, step := range steps {
		started := time.Now()
		if err := step(); err != nil {
			return err
		}
		record(started)
	}
	return nil
}

// slice runs the workload on t with `workers` goroutines until the deadline (each
// worker finishes its current cycle, so that no volume is left half-way) or until
// `maxCalls` calls completed (0: no limit).
func slice(t *target, c cycle, workers int, length time.Duration, maxCalls int64) (latencies []time.Duration, seconds float64, cpu int64, err error) {
	var mu sync.Mutex
	var failure error
	var calls int64
	var stop atomic.Bool
	perWorker := make([][]time.Duration, workers)
	cpuStart := cpuNanos(t.pid)
	started := time.Now()
	deadline := started.Add(length)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			record := func(at time.Time) {
				perWorker[w] = append(perWorker[w], time.Since(at))
				if maxCalls > 0 && atomic.AddInt64(&calls, 1) >= maxCalls {
					stop.Store(true)
				}
			}
			for !stop.Load() && (maxCalls > 0 || time.Now().Before(deadline)) {
				if err := c(t.proxy, w, record); err != nil {
					mu.Lock()
					failure = err
					mu.Unlock()
					stop.Store(true)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	seconds = time.Since(started).Seconds()
	cpu = cpuNanos(t.pid) - cpuStart
	for _, l := range perWorker {
		latencies = append(latencies, l...)
	}
	return latencies, seconds, cpu, failure
}

type roundResult struct {
	Round   int     `json:"round"`
	Target  string  `json:"target"`
	Calls   int     `json:"calls"`
	Seconds float64 `json:"seconds"`
	CPUNs   int64   `json:"cpuNs"`
	P50Ms   float64 `json:"p50Ms"`
	P99Ms   float64 `json:"p99Ms"`
	MaxMs   float64 `json:"maxMs"`
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return float64(sorted[rank].Nanoseconds()) / 1e6
}

type targetFlags []string

func (t *targetFlags) String() string     { return strings.Join(*t, ",") }
func (t *targetFlags) Set(v string) error { *t = append(*t, v); return nil }

func main() {
	var targets targetFlags
	flag.Var(&targets, "target", "name=socket:pid (repeatable)")
	name := flag.String("workload", "hot", "hot, crud or list")
	workers := flag.Int("workers", 4, "concurrent callers per target")
	length := flag.Duration("slice", 250*time.Millisecond, "length of one slice")
	rounds := flag.Int("rounds", 6, "rounds")
	slices := flag.Int("slices", 2, "slices per target per round")
	warmup := flag.Duration("warmup", 250*time.Millisecond, "unmeasured load per target first")
	listWant := flag.Int("list-min", 0, "List replies must hold at least this many volumes")
	requests := flag.Int64("requests", 0, "instead of slices: send this many calls to the one target, then exit")
	outPath := flag.String("out", "", "write the JSON results here instead of stdout")
	flag.Parse()

	c, err := workload(*name, *listWant)
	if err != nil {
		fail(err)
	}
	var ts []*target
	for _, spec := range targets {
		eq, colon := strings.Index(spec, "="), strings.LastIndex(spec, ":")
		if eq < 1 || colon < eq {
			fail(fmt.Errorf("bad -target %q: want name=socket:pid", spec))
		}
		pid, err := strconv.Atoi(spec[colon+1:])
		if err != nil {
			fail(fmt.Errorf("bad pid in -target %q", spec))
		}
		client, err := plugins.NewClient("unix://"+spec[eq+1:colon], nil)
		if err != nil {
			fail(err)
		}
		ts = append(ts, &target{name: spec[:eq], socket: spec[eq+1 : colon], pid: pid, proxy: proxy{client}})
	}
	if len(ts) == 0 {
		fail(errors.New("no -target given"))
	}
	if *name == "hot" { // the volumes a running container would use
		for _, t := range ts {
			for w := 0; w < *workers; w++ {
				if err := t.proxy.Create(fmt.Sprintf("hot-%d", w)); err != nil {
					fail(fmt.Errorf("%s: %w", t.name, err))
				}
			}
		}
	}
	if *requests > 0 {
		_, _, _, err := slice(ts[0], c, *workers, 0, *requests)
		if err != nil {
			fail(fmt.Errorf("%s: %w", ts[0].name, err))
		}
		return
	}
	for _, t := range ts {
		if _, _, _, err := slice(t, c, *workers, *warmup, 0); err != nil {
			fail(fmt.Errorf("%s: %w", t.name, err))
		}
	}
	var out []roundResult
	for r := 0; r < *rounds; r++ {
		lat := make([][]time.Duration, len(ts))
		secs := make([]float64, len(ts))
		cpus := make([]int64, len(ts))
		for s := 0; s < *slices; s++ {
			for k := range ts {
				i := (k + r + s) % len(ts)
				l, sec, cpu, err := slice(ts[i], c, *workers, *length, 0)
				if err != nil {
					fail(fmt.Errorf("%s: %w", ts[i].name, err))
				}
				lat[i] = append(lat[i], l...)
				secs[i] += sec
				cpus[i] += cpu
			}
		}
		for i, t := range ts {
			sort.Slice(lat[i], func(a, b int) bool { return lat[i][a] < lat[i][b] })
			out = append(out, roundResult{r, t.name, len(lat[i]), secs[i], cpus[i], percentile(lat[i], 50), percentile(lat[i], 99), percentile(lat[i], 100)})
		}
	}
	sink := os.Stdout
	if *outPath != "" {
		file, err := os.Create(*outPath)
		if err != nil {
			fail(err)
		}
		defer file.Close()
		sink = file
	}
	if err := json.NewEncoder(sink).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}
