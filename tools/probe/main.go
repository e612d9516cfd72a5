// Command probe is a Velero BackupItemAction (v2) plugin used only by
// backup-gate's integration tests. For every pod, PVC and PV a backup
// processes, it sleeps for $BACKUP_GATE_PROBE_SLEEP (a Go duration, default 0)
// and then writes one JSON file into $BACKUP_GATE_PROBE_DIR:
//
//	{"backup":"b1","kind":"Pod","namespace":"ns","name":"p","start":"RFC3339Nano","end":"RFC3339Nano",
//	 "startNs":"<unix ns>","endNs":"<unix ns>","pid":123}
//
// One file per record, written to a temporary name and renamed, so concurrent
// plugin processes (Velero starts one per backup) never interleave writes.
// Plugin processes inherit the Velero server's environment.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	"github.com/vmware-tanzu/velero/pkg/plugin/framework"
	"github.com/vmware-tanzu/velero/pkg/plugin/velero"
	biav2 "github.com/vmware-tanzu/velero/pkg/plugin/velero/backupitemaction/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

const pluginName = "backup-gate.io/probe"

func main() {
	framework.NewServer().
		BindFlags(pflag.CommandLine).
		RegisterBackupItemActionV2(pluginName, func(l logrus.FieldLogger) (any, error) {
			return &probe{log: l}, nil
		}).
		Serve()
}

type probe struct {
	log logrus.FieldLogger
}

var seq atomic.Int64

type record struct {
	Backup    string `json:"backup"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Start     string `json:"start"`
	End       string `json:"end"`
	StartNs   string `json:"startNs"`
	EndNs     string `json:"endNs"`
	PID       int    `json:"pid"`
}

func (*probe) Name() string { return pluginName }

func (*probe) AppliesTo() (velero.ResourceSelector, error) {
	return velero.ResourceSelector{
		IncludedResources: []string{"pods", "persistentvolumeclaims", "persistentvolumes"},
	}, nil
}

func (p *probe) Execute(item runtime.Unstructured, backup *velerov1.Backup) (runtime.Unstructured, []velero.ResourceIdentifier, string, []velero.ResourceIdentifier, error) {
	start := time.Now()
	u := &unstructured.Unstructured{Object: item.UnstructuredContent()}
	if s := os.Getenv("BACKUP_GATE_PROBE_SLEEP"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, nil, "", nil, fmt.Errorf("probe: bad BACKUP_GATE_PROBE_SLEEP %q: %w", s, err)
		}
		time.Sleep(d)
	}
	end := time.Now()
	dir := os.Getenv("BACKUP_GATE_PROBE_DIR")
	if dir == "" {
		return nil, nil, "", nil, fmt.Errorf("probe: BACKUP_GATE_PROBE_DIR is not set")
	}
	rec := record{
		Backup: backup.Name, Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(),
		Start: start.UTC().Format(time.RFC3339Nano), End: end.UTC().Format(time.RFC3339Nano),
		StartNs: strconv.FormatInt(start.UnixNano(), 10), EndNs: strconv.FormatInt(end.UnixNano(), 10),
		PID: os.Getpid(),
	}
	b, _ := json.Marshal(rec)
	base := fmt.Sprintf("%d-%d-%d", start.UnixNano(), os.Getpid(), seq.Add(1))
	tmp := filepath.Join(dir, "."+base+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return nil, nil, "", nil, fmt.Errorf("probe: write record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, base+".json")); err != nil {
		return nil, nil, "", nil, fmt.Errorf("probe: rename record: %w", err)
	}
	p.log.WithField("record", string(b)).Info("probe recorded item")
	return item, nil, "", nil, nil
}

func (*probe) Progress(string, *velerov1.Backup) (velero.OperationProgress, error) {
	return velero.OperationProgress{}, biav2.AsyncOperationsNotSupportedError()
}

func (*probe) Cancel(string, *velerov1.Backup) error { return nil }
