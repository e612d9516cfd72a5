// Command csi-hostpath is the test node's CSI driver (hostpath.csi.backup-gate.io): volumes are
// directories under -data-dir, a snapshot is a tar of its volume, a group snapshot is one tar
// per member volume cut together (under one lock, so no other write of the driver interleaves),
// and publishing is a bind mount. It runs on the node's host as one process serving the CSI identity, controller and
// node services on -endpoint, and registers itself with the kubelet through the plugin
// registration socket in -registration-dir (what node-driver-registrar does for a real
// driver). Only for tests: one node, no capacity accounting, no block volumes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const driverName = "hostpath.csi.backup-gate.io"

func main() {
	endpoint := flag.String("endpoint", "", "unix socket path to serve CSI on")
	regDir := flag.String("registration-dir", "", "the kubelet's plugins_registry directory")
	dataDir := flag.String("data-dir", "", "where volumes and snapshots live")
	nodeID := flag.String("node-id", "", "this node's name")
	flag.Parse()
	if *endpoint == "" || *regDir == "" || *dataDir == "" || *nodeID == "" {
		log.Fatal("csi-hostpath: -endpoint, -registration-dir, -data-dir and -node-id are required")
	}
	d := &driver{data: *dataDir, node: *nodeID}
	for _, sub := range []string{"volumes", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(d.data, sub), 0o755); err != nil {
			log.Fatal(err)
		}
	}

	csiServer, err := serve(*endpoint, func(s *grpc.Server) {
		csi.RegisterIdentityServer(s, d)
		csi.RegisterControllerServer(s, d)
		csi.RegisterGroupControllerServer(s, d)
		csi.RegisterNodeServer(s, d)
	})
	if err != nil {
		log.Fatal(err)
	}
	regServer, err := serve(filepath.Join(*regDir, driverName+"-reg.sock"), func(s *grpc.Server) {
		registerapi.RegisterRegistrationServer(s, &registration{endpoint: *endpoint})
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("csi-hostpath: %s serving on %s", driverName, *endpoint)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	regServer.Stop()
	csiServer.Stop()
}

func serve(path string, register func(*grpc.Server)) (*grpc.Server, error) {
	_ = os.Remove(path) // a socket left by an earlier run
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			log.Printf("%s: %v", info.FullMethod, err)
		}
		return resp, err
	}))
	register(s)
	go func() { _ = s.Serve(l) }()
	return s, nil
}

// registration answers the kubelet's plugin watcher.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	endpoint string
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: driverName, Endpoint: r.endpoint, SupportedVersions: []string{"1.0.0"}}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		log.Printf("csi-hostpath: the kubelet did not register the driver: %s", s.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	csi.UnimplementedGroupControllerServer
	data string
	node string
	mu   sync.Mutex
}

// Names come from the external provisioner and snapshotter (pvc-<uid>, snapshot-<uid>); anything
// else could escape the data directory.
var safeID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (d *driver) volumePath(id string) (string, error) {
	if !safeID.MatchString(id) {
		return "", status.Errorf(codes.InvalidArgument, "bad volume id %q", id)
	}
	return filepath.Join(d.data, "volumes", id), nil
}

func (d *driver) snapshotPath(id string) (string, error) {
	if !safeID.MatchString(id) {
		return "", status.Errorf(codes.InvalidArgument, "bad snapshot id %q", id)
	}
	return filepath.Join(d.data, "snapshots", id+".tar"), nil
}

// ---- identity ----

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: driverName, VendorVersion: "0.1.0"}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	var caps []*csi.PluginCapability
	for _, t := range []csi.PluginCapability_Service_Type{csi.PluginCapability_Service_CONTROLLER_SERVICE, csi.PluginCapability_Service_GROUP_CONTROLLER_SERVICE} {
		caps = append(caps, &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}})
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// ---- controller ----

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

func (d *driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	for _, c := range req.GetVolumeCapabilities() {
		if c.GetBlock() != nil {
			return nil, status.Error(codes.InvalidArgument, "block volumes are not supported")
		}
	}
	p, err := d.volumePath(req.GetName())
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.MkdirAll(p, 0o777); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if src := req.GetVolumeContentSource().GetSnapshot(); src != nil {
		snap, err := d.snapshotPath(src.GetSnapshotId())
		if err != nil {
			return nil, err
		}
		if out, err := exec.Command("tar", "-xf", snap, "-C", p).CombinedOutput(); err != nil {
			return nil, status.Errorf(codes.Internal, "restoring snapshot %s: %v: %s", src.GetSnapshotId(), err, out)
		}
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId: req.GetName(), CapacityBytes: req.GetCapacityRange().GetRequiredBytes(), ContentSource: req.GetVolumeContentSource(),
	}}, nil
}

func (d *driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	p, err := d.volumePath(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(p); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{VolumeCapabilities: req.GetVolumeCapabilities()}}, nil
}

func (d *driver) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	snap, err := d.cutSnapshot(req.GetName(), req.GetSourceVolumeId(), "")
	if err != nil {
		return nil, err
	}
	return &csi.CreateSnapshotResponse{Snapshot: snap}, nil
}

// cutSnapshot tars volume volID into snapshot id (once: a retry returns the same snapshot).
// The caller holds d.mu.
func (d *driver) cutSnapshot(id, volID, groupID string) (*csi.Snapshot, error) {
	vol, err := d.volumePath(volID)
	if err != nil {
		return nil, err
	}
	snap, err := d.snapshotPath(id)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(snap); errors.Is(err, os.ErrNotExist) {
		tmp := snap + ".tmp"
		if out, err := exec.Command("tar", "-cf", tmp, "-C", vol, ".").CombinedOutput(); err != nil {
			return nil, status.Errorf(codes.Internal, "snapshotting %s: %v: %s", volID, err, out)
		}
		if err := os.Rename(tmp, snap); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	fi, err := os.Stat(snap)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.Snapshot{
		SnapshotId: id, SourceVolumeId: volID, SizeBytes: fi.Size(),
		CreationTime: timestamppb.New(fi.ModTime()), ReadyToUse: true, GroupSnapshotId: groupID,
	}, nil
}

func (d *driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	snap, err := d.snapshotPath(req.GetSnapshotId())
	if err != nil {
		return nil, err
	}
	if err := os.Remove(snap); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// ---- group controller ----

// A group snapshot is its members' tars plus snapshots/<group id>.group, the members' ids
// and source volumes in request order (what GetVolumeGroupSnapshot and a retry answer from).
type groupRecord struct {
	Members []groupMember `json:"members"`
}

type groupMember struct {
	Snapshot string `json:"snapshot"`
	Volume   string `json:"volume"`
}

func (d *driver) GroupControllerGetCapabilities(context.Context, *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return &csi.GroupControllerGetCapabilitiesResponse{Capabilities: []*csi.GroupControllerServiceCapability{{
		Type: &csi.GroupControllerServiceCapability_Rpc{Rpc: &csi.GroupControllerServiceCapability_RPC{
			Type: csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT,
		}},
	}}}, nil
}

func (d *driver) groupPath(id string) (string, error) {
	if !safeID.MatchString(id) {
		return "", status.Errorf(codes.InvalidArgument, "bad group snapshot id %q", id)
	}
	return filepath.Join(d.data, "snapshots", id+".group"), nil
}

// memberID names a group member's snapshot after the group and its position: stable across
// retries and within the id length the driver accepts.
func memberID(group string, i int) string { return fmt.Sprintf("%s-m%d", group, i) }

// CreateVolumeGroupSnapshot cuts every member's snapshot under one hold of the driver's lock:
// no other snapshot, volume creation or deletion of this driver runs between them.
func (d *driver) CreateVolumeGroupSnapshot(_ context.Context, req *csi.CreateVolumeGroupSnapshotRequest) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	id := req.GetName()
	vols := req.GetSourceVolumeIds()
	if len(vols) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no source volumes")
	}
	rec, err := d.groupPath(id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if g, err := readGroup(rec); err == nil {
		// A retry: the same group only for the same volumes.
		if len(g.Members) != len(vols) {
			return nil, status.Errorf(codes.AlreadyExists, "group snapshot %s exists for other volumes", id)
		}
		for i, m := range g.Members {
			if m.Volume != vols[i] {
				return nil, status.Errorf(codes.AlreadyExists, "group snapshot %s exists for other volumes", id)
			}
		}
	}
	g := groupRecord{}
	var snaps []*csi.Snapshot
	for i, v := range vols {
		s, err := d.cutSnapshot(memberID(id, i), v, id)
		if err != nil {
			return nil, err
		}
		snaps = append(snaps, s)
		g.Members = append(g.Members, groupMember{Snapshot: s.SnapshotId, Volume: v})
	}
	b, _ := json.Marshal(g)
	if err := os.WriteFile(rec, b, 0o644); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: &csi.VolumeGroupSnapshot{
		GroupSnapshotId: id, Snapshots: snaps, CreationTime: snaps[0].CreationTime, ReadyToUse: true,
	}}, nil
}

func (d *driver) GetVolumeGroupSnapshot(_ context.Context, req *csi.GetVolumeGroupSnapshotRequest) (*csi.GetVolumeGroupSnapshotResponse, error) {
	id := req.GetGroupSnapshotId()
	rec, err := d.groupPath(id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g, err := readGroup(rec)
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "group snapshot %s", id)
	} else if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	var snaps []*csi.Snapshot
	for _, m := range g.Members {
		p, err := d.snapshotPath(m.Snapshot)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "group snapshot %s: member %s: %v", id, m.Snapshot, err)
		}
		snaps = append(snaps, &csi.Snapshot{
			SnapshotId: m.Snapshot, SourceVolumeId: m.Volume, SizeBytes: fi.Size(),
			CreationTime: timestamppb.New(fi.ModTime()), ReadyToUse: true, GroupSnapshotId: id,
		})
	}
	return &csi.GetVolumeGroupSnapshotResponse{GroupSnapshot: &csi.VolumeGroupSnapshot{
		GroupSnapshotId: id, Snapshots: snaps, CreationTime: snaps[0].CreationTime, ReadyToUse: true,
	}}, nil
}

func (d *driver) DeleteVolumeGroupSnapshot(_ context.Context, req *csi.DeleteVolumeGroupSnapshotRequest) (*csi.DeleteVolumeGroupSnapshotResponse, error) {
	id := req.GetGroupSnapshotId()
	rec, err := d.groupPath(id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := req.GetSnapshotIds()
	if g, err := readGroup(rec); err == nil {
		for _, m := range g.Members {
			ids = append(ids, m.Snapshot)
		}
	}
	for _, s := range ids {
		p, err := d.snapshotPath(s)
		if err != nil {
			return nil, err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	if err := os.Remove(rec); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
}

func readGroup(path string) (groupRecord, error) {
	var g groupRecord
	b, err := os.ReadFile(path)
	if err != nil {
		return g, err
	}
	return g, json.Unmarshal(b, &g)
}

// ---- node ----

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.node}, nil
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

func (d *driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	vol, err := d.volumePath(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	target := req.GetTargetPath()
	if target == "" {
		return nil, status.Error(codes.InvalidArgument, "no target path")
	}
	if mounted(target) {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	args := []string{"--bind", vol, target}
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		return nil, status.Errorf(codes.Internal, "mount %s: %v: %s", strings.Join(args, " "), err, out)
	}
	if req.GetReadonly() {
		if out, err := exec.Command("mount", "-o", "remount,bind,ro", target).CombinedOutput(); err != nil {
			return nil, status.Errorf(codes.Internal, "remount ro %s: %v: %s", target, err, out)
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	target := req.GetTargetPath()
	if mounted(target) {
		if out, err := exec.Command("umount", target).CombinedOutput(); err != nil {
			return nil, status.Errorf(codes.Internal, "umount %s: %v: %s", target, err, out)
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// mounted reports whether path is a mount point (per /proc/self/mountinfo).
func mounted(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	clean := filepath.Clean(path)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.ReplaceAll(f[4], `\040`, " ") == clean {
			return true
		}
	}
	return false
}
