// Command controlplane starts a throw-away Kubernetes control plane (etcd and
// kube-apiserver, no controller-manager, no scheduler, no kubelet) on loopback
// with random ports, installs Velero's CRDs (velero.io/v1 and v2alpha1, from
// Velero's generated Go packages), writes an admin kubeconfig, prints one JSON
// line on stdout and runs until SIGTERM/SIGINT (or, with -stop-on-stdin-eof,
// until its stdin closes), then stops both processes and removes their data.
//
// It uses controller-runtime's envtest for the wiring. The binaries are not
// started directly: envtest runs this same executable under the names
// "etcd" and "kube-apiserver" (symlinks in a private directory), and that
// wrapper sets PR_SET_PDEATHSIG before exec'ing the real binary, so the
// control plane dies with the launcher even if the launcher is SIGKILLed.
//
// Usage:
//
//	controlplane -etcd PATH -kube-apiserver PATH -kubeconfig OUT [-log-dir DIR]
//	             [-apiserver-arg key=value]... [-start-timeout 90s] [-stop-on-stdin-eof]
//
// kube-apiserver can be stopped and started again in place, with the same
// certificates, port and etcd (envtest would regenerate its serving CA and
// admin credentials if it started it again): the "kube-apiserver" wrapper
// does not exec the real binary but runs it as its child, and on a signal
// forwarded by the launcher kills it (SIGUSR1 to the launcher: SIGKILL, as a
// crash would) or starts it again with the identical command line (SIGUSR2).
// The launcher then prints one JSON line, {"apiserver":"stopped"} or
// {"apiserver":"started"}; readiness is for the client to poll.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1crds "github.com/vmware-tanzu/velero/config/crd/v1/crds"
	v2crds "github.com/vmware-tanzu/velero/config/crd/v2alpha1/crds"
	"golang.org/x/sys/unix"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const (
	envRealEtcd      = "BACKUP_GATE_REAL_ETCD"
	envRealAPIServer = "BACKUP_GATE_REAL_KUBE_APISERVER"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	// Wrapper mode: envtest runs us as "etcd" or "kube-apiserver".
	switch filepath.Base(os.Args[0]) {
	case "etcd":
		wrapExec(os.Getenv(envRealEtcd))
	case "kube-apiserver":
		os.Exit(wrapRestartable(os.Getenv(envRealAPIServer)))
	}
	os.Exit(run())
}

// wrapExec makes the kernel SIGKILL this process when its parent (the
// launcher) dies, then replaces itself with the real binary.
func wrapExec(real string) {
	if real == "" {
		fmt.Fprintln(os.Stderr, "controlplane wrapper: real binary path not set")
		os.Exit(127)
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane wrapper: prctl:", err)
		os.Exit(127)
	}
	// The parent may already have gone between fork and prctl.
	if os.Getppid() == 1 {
		os.Exit(1)
	}
	err := syscall.Exec(real, append([]string{real}, os.Args[1:]...), os.Environ())
	fmt.Fprintln(os.Stderr, "controlplane wrapper: exec", real, ":", err)
	os.Exit(127)
}

// wrapRestartable runs the real kube-apiserver as a child, with the same
// parent-death rule, and keeps it under signal control: SIGUSR1 SIGKILLs it,
// SIGUSR2 starts it again with the same arguments and environment, SIGTERM and
// SIGINT (envtest stopping it) are passed on and end the wrapper with the
// child's exit.
func wrapRestartable(real string) int {
	if real == "" {
		fmt.Fprintln(os.Stderr, "controlplane wrapper: real binary path not set")
		return 127
	}
	// Pdeathsig fires when the thread that forked the child ends: keep to one thread that never ends.
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane wrapper: prctl:", err)
		return 127
	}
	if os.Getppid() == 1 {
		return 1
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	exits := make(chan error, 1)
	var child *exec.Cmd
	start := func() error {
		cmd := exec.Command(real, os.Args[1:]...)
		cmd.Stdout, cmd.Stderr, cmd.Env = os.Stdout, os.Stderr, os.Environ()
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return err
		}
		child = cmd
		go func() { exits <- cmd.Wait() }()
		return nil
	}
	if err := start(); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane wrapper: start", real, ":", err)
		return 127
	}
	for {
		select {
		case err := <-exits:
			// Not asked for: the wrapper ends with the child, as the exec'd binary would.
			child = nil
			return exitCode(err)
		case s := <-sigs:
			switch s {
			case syscall.SIGUSR1:
				if child != nil {
					_ = child.Process.Kill()
					<-exits
					child = nil
					fmt.Fprintln(os.Stderr, "controlplane wrapper: kube-apiserver killed on request")
				}
			case syscall.SIGUSR2:
				if child == nil {
					if err := start(); err != nil {
						fmt.Fprintln(os.Stderr, "controlplane wrapper: restart", real, ":", err)
						return 127
					}
					fmt.Fprintln(os.Stderr, "controlplane wrapper: kube-apiserver started again on request")
				}
			default:
				if child == nil {
					return 0
				}
				_ = child.Process.Signal(s)
				return exitCode(<-exits)
			}
		}
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() >= 0 {
			return ee.ExitCode()
		}
		return 1
	}
	if err != nil {
		return 1
	}
	return 0
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "controlplane: "+format+"\n", a...)
}

func run() int {
	// Our own flag set: controller-runtime registers "kubeconfig" on the global one.
	flag := flag.NewFlagSet("controlplane", flag.ExitOnError)
	var (
		etcdPath      = flag.String("etcd", "", "path of the etcd binary (required)")
		apiserverPath = flag.String("kube-apiserver", "", "path of the kube-apiserver binary (required)")
		kubeconfig    = flag.String("kubeconfig", "", "where to write the admin kubeconfig (required)")
		logDir        = flag.String("log-dir", "", "directory for etcd.log and kube-apiserver.log (default: inherit stderr)")
		startTimeout  = flag.Duration("start-timeout", 90*time.Second, "start timeout for each of etcd and kube-apiserver")
		stopTimeout   = flag.Duration("stop-timeout", 30*time.Second, "stop timeout for each process")
		stdinEOF      = flag.Bool("stop-on-stdin-eof", false, "stop when stdin reaches EOF (the parent died)")
		noCRDs        = flag.Bool("no-crds", false, "do not install Velero's CRDs")
		apiserverArgs multiFlag
		etcdArgs      multiFlag
	)
	flag.Var(&apiserverArgs, "apiserver-arg", "extra kube-apiserver flag as key=value (repeatable; replaces envtest's value for that key)")
	flag.Var(&etcdArgs, "etcd-arg", "extra etcd flag as key=value (repeatable)")
	_ = flag.Parse(os.Args[1:])
	if *etcdPath == "" || *apiserverPath == "" || *kubeconfig == "" {
		logf("-etcd, -kube-apiserver and -kubeconfig are required")
		return 2
	}
	for _, p := range []string{*etcdPath, *apiserverPath} {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			logf("binary %s not found; run `bash tools/build.sh`", p)
			return 2
		}
	}

	self, err := os.Executable()
	if err != nil {
		logf("cannot find own executable: %v", err)
		return 1
	}
	etcdAbs, _ := filepath.Abs(*etcdPath)
	apiAbs, _ := filepath.Abs(*apiserverPath)
	// envtest looks these up before BinaryAssetsDirectory; make sure it uses ours.
	for _, k := range []string{"TEST_ASSET_KUBE_APISERVER", "TEST_ASSET_ETCD", "TEST_ASSET_KUBECTL", "KUBEBUILDER_ASSETS"} {
		os.Unsetenv(k)
	}
	os.Setenv(envRealEtcd, etcdAbs)
	os.Setenv(envRealAPIServer, apiAbs)

	assets, err := os.MkdirTemp("", "controlplane-bin-")
	if err != nil {
		logf("mkdtemp: %v", err)
		return 1
	}
	defer os.RemoveAll(assets)
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if err := os.Symlink(self, filepath.Join(assets, name)); err != nil {
			logf("symlink: %v", err)
			return 1
		}
	}

	var crds []*apiextv1.CustomResourceDefinition
	if !*noCRDs {
		crds = append(append(crds, v1crds.CRDs...), v2crds.CRDs...)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDs:                     crds,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: *startTimeout,
		ControlPlaneStopTimeout:  *stopTimeout,
	}
	api := env.ControlPlane.GetAPIServer()
	for _, kv := range apiserverArgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			logf("bad -apiserver-arg %q: want key=value", kv)
			return 2
		}
		api.Configure().Set(strings.TrimPrefix(k, "--"), v)
	}
	env.ControlPlane.Etcd = &envtest.Etcd{}
	for _, kv := range etcdArgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			logf("bad -etcd-arg %q: want key=value", kv)
			return 2
		}
		env.ControlPlane.Etcd.Configure().Set(strings.TrimPrefix(k, "--"), v)
	}
	if *logDir != "" {
		if err := os.MkdirAll(*logDir, 0o755); err != nil {
			logf("log dir: %v", err)
			return 1
		}
		ef, err1 := os.OpenFile(filepath.Join(*logDir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		af, err2 := os.OpenFile(filepath.Join(*logDir, "kube-apiserver.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err := errors.Join(err1, err2); err != nil {
			logf("log files: %v", err)
			return 1
		}
		defer ef.Close()
		defer af.Close()
		env.ControlPlane.Etcd.Out, env.ControlPlane.Etcd.Err = ef, ef
		api.Out, api.Err = af, af
	} else {
		env.ControlPlane.Etcd.Out, env.ControlPlane.Etcd.Err = os.Stderr, os.Stderr
		api.Out, api.Err = os.Stderr, os.Stderr
	}

	// Signals are caught before starting so that a stop during start-up still cleans up.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	// Restart requests are ignored until the control plane is up (see below).
	restarts := make(chan os.Signal, 4)
	signal.Notify(restarts, syscall.SIGUSR1, syscall.SIGUSR2)
	stdinClosed := make(chan struct{})
	if *stdinEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(stdinClosed)
		}()
	}

	started := time.Now()
	startErr := make(chan error, 1)
	go func() {
		_, err := env.Start()
		startErr <- err
	}()
	select {
	case err := <-startErr:
		if err != nil {
			logf("start failed after %s: %v", time.Since(started).Round(time.Millisecond), err)
			_ = env.Stop()
			return 1
		}
	case s := <-sigs:
		logf("got %v during start-up; stopping", s)
		<-startErr
		_ = env.Stop()
		return 1
	case <-stdinClosed:
		logf("stdin closed during start-up; stopping")
		<-startErr
		_ = env.Stop()
		return 1
	}

	if err := os.WriteFile(*kubeconfig, env.KubeConfig, 0o600); err != nil {
		logf("write kubeconfig: %v", err)
		_ = env.Stop()
		return 1
	}
	pids := childPIDs()
	line, _ := json.Marshal(map[string]any{
		"kubeconfig": mustAbs(*kubeconfig),
		"host":       env.Config.Host,
		"pid":        os.Getpid(),
		"children":   pids,
		"startMs":    time.Since(started).Milliseconds(),
		"etcd":       env.ControlPlane.Etcd.URL.String(),
	})
	fmt.Println(string(line))
	logf("ready in %s at %s", time.Since(started).Round(time.Millisecond), env.Config.Host)

	ctx, cancel := context.WithCancel(context.Background())
	died := make(chan int, 1)
	go watchChildren(ctx, pids, died)

	code := 0
loop:
	for {
		select {
		case s := <-sigs:
			logf("got %v; stopping", s)
			break loop
		case <-stdinClosed:
			logf("stdin closed; stopping")
			break loop
		case pid := <-died:
			logf("child process %d exited unexpectedly; stopping", pid)
			code = 1
			break loop
		case s := <-restarts:
			if err := forwardToAPIServer(pids, s); err != nil {
				logf("%v", err)
				continue
			}
			state := "stopped"
			if s == syscall.SIGUSR2 {
				state = "started"
			}
			// The wrapper handles one signal at a time; wait until it has acted on this one.
			waitAPIServerChild(pids, state == "started", 30*time.Second)
			out, _ := json.Marshal(map[string]string{"apiserver": state})
			fmt.Println(string(out))
			logf("kube-apiserver %s on request", state)
		}
	}
	cancel()
	if err := env.Stop(); err != nil {
		logf("stop: %v", err)
		code = 1
	}
	logf("stopped")
	return code
}

// apiServerWrapper is the child run as "kube-apiserver" (the other one, etcd, has exec'd).
func apiServerWrapper(pids []int) (int, error) {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(b), "\x00")
		if filepath.Base(argv0) == "kube-apiserver" {
			return pid, nil
		}
	}
	return 0, errors.New("kube-apiserver wrapper process not found")
}

func forwardToAPIServer(pids []int, s os.Signal) error {
	pid, err := apiServerWrapper(pids)
	if err != nil {
		return err
	}
	return syscall.Kill(pid, s.(syscall.Signal))
}

// waitAPIServerChild waits until the wrapper has (running) or has not a child.
func waitAPIServerChild(pids []int, running bool, timeout time.Duration) {
	pid, err := apiServerWrapper(pids)
	if err != nil {
		return
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if (len(childrenOf(pid)) > 0) == running {
			return
		}
	}
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// childPIDs lists the direct children of this process (etcd and kube-apiserver).
func childPIDs() []int { return childrenOf(os.Getpid()) }

// childrenOf lists the live (not zombie) direct children of a process.
func childrenOf(self int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(self) && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func watchChildren(ctx context.Context, pids []int, died chan<- int) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, pid := range pids {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
				if err != nil || isZombie(string(b)) {
					select {
					case died <- pid:
					default:
					}
					return
				}
			}
		}
	}
}

func isZombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(stat[i+1:])
	return len(f) > 0 && f[0] == "Z"
}
