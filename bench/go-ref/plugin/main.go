// The reference: a volume plugin written the usual way in Go, with the semantics of a
// docker/go-plugins-helpers plugin (sdk.Handler + volume.Handler) and nothing else:
// net/http on a Unix socket, one JSON decode and one json.Encoder per request, volumes as
// directories under one root, mount IDs in an in-memory set behind one mutex, no fsync.
// Standard library only, so Debian's golang-go builds it offline.
//
//	go-ref-plugin <socket> <root>
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// The content type go-plugins-helpers' sdk.EncodeResponse sets.
const contentType = "application/vnd.docker.plugins.v1+json"

type request struct {
	Name string
	ID   string
	Opts map[string]string
}

type volume struct {
	Name       string
	Mountpoint string `json:",omitempty"`
}

type driver struct {
	root   string
	mu     sync.Mutex
	mounts map[string]map[string]struct{} // volume name -> mount IDs
}

func (d *driver) path(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("invalid volume name %q", name)
	}
	return filepath.Join(d.root, name), nil
}

func (d *driver) existing(name string) (string, error) {
	p, err := d.path(name)
	if err != nil {
		return "", err
	}
	info, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("volume %s not found", name)
	}
	if !info.IsDir() {
		return "", fmt.Errorf("volume %s is not a directory", name)
	}
	return p, nil
}

func (d *driver) create(r request) (interface{}, error) {
	p, err := d.path(r.Name)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	return struct{}{}, nil
}

func (d *driver) remove(r request) (interface{}, error) {
	p, err := d.existing(r.Name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.mounts[r.Name]) > 0 {
		return nil, fmt.Errorf("volume %s is in use", r.Name)
	}
	return struct{}{}, os.RemoveAll(p)
}

func (d *driver) mount(r request) (interface{}, error) {
	p, err := d.existing(r.Name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := d.mounts[r.Name]
	if ids == nil {
		ids = map[string]struct{}{}
		d.mounts[r.Name] = ids
	}
	ids[r.ID] = struct{}{}
	return struct{ Mountpoint string }{p}, nil
}

func (d *driver) unmount(r request) (interface{}, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := d.mounts[r.Name]
	delete(ids, r.ID)
	if len(ids) == 0 {
		delete(d.mounts, r.Name)
	}
	return struct{}{}, nil
}

func (d *driver) pathOf(r request) (interface{}, error) {
	p, err := d.existing(r.Name)
	if err != nil {
		return nil, err
	}
	return struct{ Mountpoint string }{p}, nil
}

func (d *driver) get(r request) (interface{}, error) {
	p, err := d.existing(r.Name)
	if err != nil {
		return nil, err
	}
	return struct{ Volume volume }{volume{Name: r.Name, Mountpoint: p}}, nil
}

func (d *driver) list(request) (interface{}, error) {
	entries, err := os.ReadDir(d.root)
	if err != nil {
		return nil, err
	}
	volumes := make([]volume, 0, len(entries))
	for _, entry := range entries {
		if entry.IsDir() && !strings.HasPrefix(entry.Name(), ".") {
			volumes = append(volumes, volume{Name: entry.Name(), Mountpoint: filepath.Join(d.root, entry.Name())})
		}
	}
	return struct{ Volumes []volume }{volumes}, nil
}

func (d *driver) capabilities(request) (interface{}, error) {
	return struct{ Capabilities struct{ Scope string } }{struct{ Scope string }{"local"}}, nil
}

// encode is sdk.EncodeResponse: errors are 500 with {"Err": ...}.
func encode(w http.ResponseWriter, res interface{}, err error) {
	w.Header().Set("Content-Type", contentType)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		res = struct{ Err string }{err.Error()}
	}
	_ = json.NewEncoder(w).Encode(res)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go-ref-plugin <socket> <root>")
		os.Exit(2)
	}
	socket, root := os.Args[1], os.Args[2]
	d := &driver{root: root, mounts: map[string]map[string]struct{}{}}

	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		encode(w, struct{ Implements []string }{[]string{"VolumeDriver"}}, nil)
	})
	handlers := map[string]func(request) (interface{}, error){
		"Create": d.create, "Remove": d.remove, "Mount": d.mount, "Unmount": d.unmount,
		"Path": d.pathOf, "Get": d.get, "List": d.list, "Capabilities": d.capabilities,
	}
	bodiless := map[string]bool{"List": true, "Capabilities": true}
	for method, handle := range handlers {
		method, handle := method, handle
		mux.HandleFunc("/VolumeDriver."+method, func(w http.ResponseWriter, r *http.Request) {
			var req request
			// Like volume.Handler: List and Capabilities take no request body.
			if !bodiless[method] {
				if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
			}
			res, err := handle(req)
			encode(w, res, err)
		})
	}

	_ = os.Remove(socket)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.Chmod(socket, 0o660); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := &http.Server{Handler: mux}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		_ = server.Close()
	}()
	if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = os.Remove(socket)
}
