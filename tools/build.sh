#!/usr/bin/env bash
# Builds the binaries the integration tests need, into a cache outside the repo:
#
#   ${BACKUP_GATE_TOOLS:-$HOME/.cache/backup-gate/tools}/<component>-<version>/<binary>
#
# and writes $CACHE/current.json (name -> absolute path) for test/support/.
# Idempotent: a component is rebuilt only when its version changes (upstream
# components: the version pinned in tools/*/go.mod; our own Go programs: a hash
# of their go.mod, go.sum and sources).
#
# Components: kube-apiserver, kubectl, etcd (tools/kube), controlplane launcher
# (tools/controlplane), velero and velero-plugin-for-aws (tools/velero), s3
# server on gofakes3 (tools/s3), probe plugin (tools/probe), helm (tools/helm);
# for the test node: kubelet, kube-controller-manager,
# kube-scheduler (tools/kube), velero-restore-helper (tools/velero), pause
# (tools/pause), the node's images (tools/images.sh, docker-save tarballs), and
# CSI: our driver (tools/csi-hostpath), external-provisioner
# (tools/csi-provisioner), csi-snapshotter, snapshot-controller and the
# VolumeSnapshot CRDs (tools/csi-snapshotter).
# It installs the Debian packages the node needs when they are missing.
#
# A build that runs long prints "still building, N s" every
# BACKUP_GATE_PROGRESS_SECONDS (default 30), so logs never look hung.
# On failure it prints one line naming the component and its full log, and
# exits non-zero. Everything is built with GOWORK=off CGO_ENABLED=0 -trimpath.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Go's caches (and ours) live under $HOME; a stripped CI environment may lack it.
if [ -z "${HOME:-}" ]; then HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"; export HOME; fi
CACHE="${BACKUP_GATE_TOOLS:-$HOME/.cache/backup-gate/tools}"
LOGS="$CACHE/logs"
mkdir -p "$CACHE" "$LOGS"
export GOWORK=off CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly" GOTOOLCHAIN=local
# Two cores: two parallel compile jobs keeps memory and load sane.
P="${BACKUP_GATE_BUILD_JOBS:-2}"
TICK="${BACKUP_GATE_PROGRESS_SECONDS:-30}"

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; else
    echo "build.sh: FAILED: go not found (need go >= 1.26 on PATH or at /usr/local/go)" >&2; exit 1; fi
fi

declare -A PATHS VERSIONS
ORDER=()

modver() { # modver DIR MODULE -> version of MODULE in DIR's build list
  (cd "$1" && go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$2")
}

modkey() { # modkey DIR -> short hash of the module's go.mod and go.sum: a changed pin rebuilds its components
  cat "$1/go.mod" "$1/go.sum" | sha256sum | cut -c1-8
}

srchash() { # srchash DIR -> short hash of the module's go.mod, go.sum and Go sources
  (cd "$1" && { echo "$(go env GOVERSION)"; find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-12)
}

# progress LABEL OWNER: runs in the background during one build; stops by itself
# once OWNER (the lane building it) is gone, even if it was killed before it could stop the ticker.
TICKER=
progress() {
  local waited=0
  # sleep gets no stdout: killing the ticker leaves it to finish on its own, and it must
  # not hold a pipe someone reads build.sh's output from.
  while sleep "$TICK" </dev/null >/dev/null 2>&1 && kill -0 "$2" 2>/dev/null; do
    waited=$((waited + TICK))
    echo "build.sh: $1: still building, $waited s"
  done
}
stop_progress() {
  [ -n "$TICKER" ] || return 0
  kill "$TICKER" 2>/dev/null || true
  wait "$TICKER" 2>/dev/null || true
  TICKER=
}
trap stop_progress EXIT

declare -A FNS LANE
# component NAME VERSION BINARY BUILDFUNC LANE: registers a component; build_lanes builds it.
# BUILDFUNC is called with the output path of the binary and must create it.
# It runs in an `if` context, where `set -e` does not apply: every step of a
# build function ends with `|| return` or is its last command.
# LANE: components of one lane build in order; the lanes build side by side (see build_lanes).
component() {
  local name="$1" version="$2" binary="$3"
  ORDER+=("$name"); VERSIONS[$name]="$version"; PATHS[$name]="$CACHE/$name-$version/$binary"
  FNS[$name]="$4"; LANE[$name]="$5"
}

build_component() { # build_component NAME: builds it unless its version is cached
  local name="$1" version="${VERSIONS[$1]}" fn="${FNS[$1]}" dir binary
  dir="$(dirname "${PATHS[$name]}")"; binary="$(basename "${PATHS[$name]}")"
  local log="$LOGS/$name-$version.log"
  if [ -x "$dir/$binary" ] || { [ -f "$dir/.component" ] && [ -f "$dir/$binary" ]; }; then
    echo "build.sh: $name $version: cached"
    return 0
  fi
  local tmp="$CACHE/.tmp-$name-$version-$$" start=$SECONDS
  rm -rf "$tmp"; mkdir -p "$tmp"
  echo "build.sh: $name $version: building (log: $log)"
  progress "$name $version" "$BASHPID" &
  TICKER=$!
  if ! "$fn" "$tmp/$binary" >"$log" 2>&1; then
    stop_progress
    rm -rf "$tmp"
    echo "build.sh: FAILED: $name $version; full log: $log" >&2
    return 1
  fi
  stop_progress
  if [ ! -x "$tmp/$binary" ] && [ ! -f "$tmp/$binary" ]; then
    rm -rf "$tmp"
    echo "build.sh: FAILED: $name $version produced no $binary; full log: $log" >&2
    return 1
  fi
  echo "$name" >"$tmp/.component"
  rm -rf "$dir"; mv "$tmp" "$dir"
  echo "build.sh: $name $version: built in $((SECONDS - start))s"
}

# build_lanes LANE...: each lane builds its components in registration order, in a
# background subshell of this script's process group (a kill of the group reaches every
# go build). Go compiles one package on up to four threads but links one binary on about one,
# so a second lane fills the cores while the first links or loads packages. Every lane runs
# to its end; a failure in any fails the build once all have stopped.
build_lanes() {
  local lane c pids=() failed=0
  for lane in "$@"; do
    (
      trap stop_progress EXIT
      for c in "${ORDER[@]}"; do
        [ "${LANE[$c]}" = "$lane" ] || continue
        build_component "$c" || exit 1
      done
    ) &
    pids+=($!)
  done
  for c in "${pids[@]}"; do wait "$c" || failed=1; done
  [ "$failed" = 0 ] || exit 1
}

# ---- kube-apiserver and etcd (tools/kube: k8s.io/kubernetes + staging replaces) ----
KUBE_DIR="$ROOT/tools/kube"
# kube-apiserver, and kubectl (the CLI's plugin test runs it as a user would), from the same
# Kubernetes module with its version stamped in.
build_kube_cmd() { # build_kube_cmd CMD OUT
  local v=k8s.io/component-base/version minor
  minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  cd "$KUBE_DIR" || return
  go build -p "$P" -trimpath -o "$2" -ldflags "-s -w \
    -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor \
    -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z" \
    "k8s.io/kubernetes/cmd/$1"
}
build_kube_apiserver() { build_kube_cmd kube-apiserver "$1"; }
build_kubectl() { build_kube_cmd kubectl "$1"; }
# The test node's own components (test/support/node.ts).
build_kubelet() { build_kube_cmd kubelet "$1"; }
build_kube_controller_manager() { build_kube_cmd kube-controller-manager "$1"; }
build_kube_scheduler() { build_kube_cmd kube-scheduler "$1"; }
build_etcd() {
  cd "$KUBE_DIR" || return
  go build -p "$P" -trimpath -ldflags "-s -w" -o "$1" ./cmd/etcd
}

# ---- our own Go programs ----
build_own() { # build_own DIR OUT
  cd "$1" || return
  go build -p "$P" -trimpath -ldflags "-s -w" -o "$2" .
}
build_controlplane() { build_own "$ROOT/tools/controlplane" "$1"; }
build_probe() { build_own "$ROOT/tools/probe" "$1"; }
build_s3() { build_own "$ROOT/tools/s3" "$1"; }
build_pause() { build_own "$ROOT/tools/pause" "$1"; }

# ---- velero (tools/velero: velero + its kopia replace) ----
VELERO_DIR="$ROOT/tools/velero"
build_velero() {
  cd "$VELERO_DIR" || return
  go build -p "$P" -trimpath -o "$1" -ldflags "-s -w \
    -X github.com/vmware-tanzu/velero/pkg/buildinfo.Version=$VELERO_VERSION \
    -X github.com/vmware-tanzu/velero/pkg/buildinfo.GitTreeState=clean" \
    github.com/vmware-tanzu/velero/cmd/velero
}
# File-system restores run it as an init container (from the Velero image).
build_velero_restore_helper() {
  cd "$VELERO_DIR" || return
  go build -p "$P" -trimpath -o "$1" -ldflags "-s -w" github.com/vmware-tanzu/velero/cmd/velero-restore-helper
}

# ---- helm (tools/helm: helm.sh/helm/v3 as a go.mod tool; the chart tests render with it) ----
HELM_DIR="$ROOT/tools/helm"
build_helm() {
  # As helm's Makefile: the default Kubernetes version (.Capabilities without a
  # cluster) is that of the client-go it is built with.
  local h=helm.sh/helm/v3 kminor
  kminor="$(modver "$HELM_DIR" k8s.io/client-go)" || return
  kminor="${kminor#v0.}"; kminor="${kminor%%.*}"
  cd "$HELM_DIR" || return
  go build -p "$P" -trimpath -o "$1" -ldflags "-s -w \
    -X $h/internal/version.version=$HELM_VERSION -X $h/internal/version.gitTreeState=clean \
    -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$kminor \
    -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$kminor" \
    $h/cmd/helm
}

# ---- promtool (tools/promtool: Prometheus's cmd/promtool as a go.mod tool; the rule tests run it) ----
# remove_all_sd leaves out Prometheus's service-discovery plugins (Prometheus's own build tag;
# plugins/*.go), which the rule tests never use: about a fifth of the package graph and most
# of the compile time (the AWS, Azure, GCE, OpenStack, ... SDKs). What stays (Kubernetes
# client-go, the remote-write auth SDKs) is imported by promtool and its config package
# directly, with no tag to cut it.
PROMTOOL_DIR="$ROOT/tools/promtool"
build_promtool() {
  local v=github.com/prometheus/common/version
  cd "$PROMTOOL_DIR" || return
  go build -p "$P" -trimpath -tags remove_all_sd -o "$1" -ldflags "-s -w -X $v.Version=$PROMTOOL_VERSION" \
    github.com/prometheus/prometheus/cmd/promtool
}

# ---- velero-plugin-for-aws: a tool of tools/velero, so it shares Velero's build list and compiled packages ----
build_aws_plugin() {
  cd "$VELERO_DIR" || return
  go build -p "$P" -trimpath -o "$1" -ldflags "-s -w" github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws
}

# ---- CSI on the test node: our driver, external-provisioner, external-snapshotter ----
CSI_PROV_DIR="$ROOT/tools/csi-provisioner"
CSI_SNAP_DIR="$ROOT/tools/csi-snapshotter"
build_csi_hostpath() { build_own "$ROOT/tools/csi-hostpath" "$1"; }
build_csi_cmd() { # build_csi_cmd DIR PACKAGE VERSION OUT
  cd "$1" || return
  go build -p "$P" -trimpath -o "$4" -ldflags "-s -w -X main.version=$3" "$2"
}
build_csi_provisioner() {
  build_csi_cmd "$CSI_PROV_DIR" github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner "$CSI_PROV_VERSION" "$1"
}
build_csi_snapshotter() {
  build_csi_cmd "$CSI_SNAP_DIR" github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter "$CSI_SNAP_VERSION" "$1"
}
build_snapshot_controller() {
  build_csi_cmd "$CSI_SNAP_DIR" github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller "$CSI_SNAP_VERSION" "$1"
}
# The VolumeSnapshot and VolumeGroupSnapshot CRDs, as external-snapshotter's client module
# ships them (Velero's volumeGroupSnapshotLabelKey needs the group ones).
build_snapshot_crds() {
  local m=github.com/kubernetes-csi/external-snapshotter/client/v8 dir f
  cd "$CSI_SNAP_DIR" || return
  go mod download "$m" || return
  dir="$(go list -m -f '{{.Dir}}' "$m")" || return
  for f in snapshot.storage.k8s.io_volumesnapshot{classes,contents,s} groupsnapshot.storage.k8s.io_volumegroupsnapshot{classes,contents,s}; do
    echo "---"; cat "$dir/config/crd/$f.yaml" || return
  done >"$1"
}

# ---- the test node's images (tools/images.sh), keyed by a hash of every input ----
BUSYBOX_BIN=/usr/bin/busybox
images_hash() {
  { for c in pause velero velero-restore-helper velero-plugin-for-aws probe; do
      sha256sum "${PATHS[$c]}" | cut -d' ' -f1; done
    sha256sum "$BUSYBOX_BIN" "$ROOT/tools/images.sh" | cut -d' ' -f1; } | sha256sum | cut -c1-12
}
build_images() {
  local out
  out="$(dirname "$1")"
  IMAGE_TAG="$IMAGES_VERSION" PAUSE_BIN="${PATHS[pause]}" BUSYBOX_BIN="$BUSYBOX_BIN" \
    VELERO_BIN="${PATHS[velero]}" RESTORE_HELPER_BIN="${PATHS[velero-restore-helper]}" \
    AWS_PLUGIN_BIN="${PATHS[velero-plugin-for-aws]}" PROBE_BIN="${PATHS[probe]}" \
    bash "$ROOT/tools/images.sh" "$out"
}

# ---- Debian packages the test node needs (containerd runs its pods) ----
NODE_DEBS=(containerd runc busybox-static containernetworking-plugins iptables umoci)
ensure_debs() {
  local missing=() p
  for p in "${NODE_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    # Everything but the test node still builds; its suite then says what is missing.
    echo "build.sh: WARNING: the test node's Debian packages are missing and this is not root;" \
      "skipping its images (sudo apt-get install --no-install-recommends ${missing[*]})" >&2
    return 1
  fi
  echo "build.sh: installing Debian packages: ${missing[*]}"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$LOGS/apt.log" 2>&1; then
    echo "build.sh: FAILED: apt-get install ${missing[*]}; full log: $LOGS/apt.log" >&2
    exit 1
  fi
}

resolve() { # resolve VAR DIR MODULE: sets VAR or fails with one line
  local var="$1" dir="$2" mod="$3" log v
  log="$LOGS/resolve-$(basename "$dir").log"
  if ! v="$(modver "$dir" "$mod" 2>"$log")" || [ -z "$v" ]; then
    echo "build.sh: FAILED: resolving $mod in ${dir#"$ROOT"/}; full log: $log" >&2
    exit 1
  fi
  printf -v "$var" '%s' "$v"
}

total=$SECONDS
HAVE_DEBS=1
ensure_debs || HAVE_DEBS=
resolve KUBE_VERSION "$KUBE_DIR" k8s.io/kubernetes
resolve ETCD_VERSION "$KUBE_DIR" go.etcd.io/etcd/server/v3
resolve VELERO_VERSION "$VELERO_DIR" github.com/vmware-tanzu/velero
resolve HELM_VERSION "$HELM_DIR" helm.sh/helm/v3
resolve CSI_PROV_VERSION "$CSI_PROV_DIR" github.com/kubernetes-csi/external-provisioner/v6
resolve CSI_SNAP_VERSION "$CSI_SNAP_DIR" github.com/kubernetes-csi/external-snapshotter/v8
resolve AWS_PLUGIN_VERSION "$VELERO_DIR" github.com/vmware-tanzu/velero-plugin-for-aws
resolve PROMTOOL_VERSION "$PROMTOOL_DIR" github.com/prometheus/prometheus

# Lane 1 builds Kubernetes and promtool; lane 2 Velero, CSI, helm and our programs (about as much work).
K="$(modkey "$KUBE_DIR")" V="$(modkey "$VELERO_DIR")" S="$(modkey "$CSI_SNAP_DIR")"
component etcd "$ETCD_VERSION-$K" etcd build_etcd 1
component kube-apiserver "$KUBE_VERSION-$K" kube-apiserver build_kube_apiserver 1
component kubectl "$KUBE_VERSION-$K" kubectl build_kubectl 1
component kubelet "$KUBE_VERSION-$K" kubelet build_kubelet 1
component kube-controller-manager "$KUBE_VERSION-$K" kube-controller-manager build_kube_controller_manager 1
component kube-scheduler "$KUBE_VERSION-$K" kube-scheduler build_kube_scheduler 1
component promtool "$PROMTOOL_VERSION-$(modkey "$PROMTOOL_DIR")" promtool build_promtool 1
component velero "$VELERO_VERSION-$V" velero build_velero 2
component velero-plugin-for-aws "$AWS_PLUGIN_VERSION-$V" velero-plugin-for-aws build_aws_plugin 2
component velero-restore-helper "$VELERO_VERSION-$V" velero-restore-helper build_velero_restore_helper 2
component probe "$(srchash "$ROOT/tools/probe")" probe build_probe 2
component controlplane "$(srchash "$ROOT/tools/controlplane")" controlplane build_controlplane 2
component s3 "$(srchash "$ROOT/tools/s3")" s3 build_s3 2
component pause "$(srchash "$ROOT/tools/pause")" pause build_pause 2
component csi-hostpath "$(srchash "$ROOT/tools/csi-hostpath")" csi-hostpath build_csi_hostpath 2
component csi-snapshotter "$CSI_SNAP_VERSION-$S" csi-snapshotter build_csi_snapshotter 2
component snapshot-controller "$CSI_SNAP_VERSION-$S" snapshot-controller build_snapshot_controller 2
component snapshot-crds "$CSI_SNAP_VERSION-$S" snapshot-crds.yaml build_snapshot_crds 2
component csi-provisioner "$CSI_PROV_VERSION-$(modkey "$CSI_PROV_DIR")" csi-provisioner build_csi_provisioner 2
component helm "$HELM_VERSION-$(modkey "$HELM_DIR")" helm build_helm 2
build_lanes 1 2
# The node's images hold binaries of both lanes.
if [ -n "$HAVE_DEBS" ]; then
  IMAGES_VERSION="$(images_hash)"
  component images "$IMAGES_VERSION" images.json build_images 3
  build_lanes 3
fi

# ---- manifest ----
manifest="$CACHE/current.json"
{
  echo "{"
  echo "  \"cache\": \"$CACHE\","
  echo "  \"versions\": {"
  n=${#ORDER[@]}; i=0
  for c in "${ORDER[@]}"; do i=$((i + 1)); sep=,; [ $i -eq $n ] && sep=
    echo "    \"$c\": \"${VERSIONS[$c]}\"$sep"; done
  echo "  },"
  echo "  \"paths\": {"
  i=0
  for c in "${ORDER[@]}"; do i=$((i + 1)); sep=,; [ $i -eq $n ] && sep=
    echo "    \"$c\": \"${PATHS[$c]}\"$sep"; done
  echo "  }"
  echo "}"
} >"$manifest.tmp"
mv "$manifest.tmp" "$manifest"
# ---- prune builds of other versions (BACKUP_GATE_TOOLS_KEEP=1 keeps them) ----
if [ "${BACKUP_GATE_TOOLS_KEEP:-}" != 1 ]; then
  for d in "$CACHE"/*/; do
    d="${d%/}"; [ -f "$d/.component" ] || continue
    c="$(cat "$d/.component")"
    if [ -n "${PATHS[$c]:-}" ] && [ "$(dirname "${PATHS[$c]}")" != "$d" ]; then
      rm -rf "$d"; echo "build.sh: pruned $(basename "$d")"
    fi
  done
fi
echo "build.sh: all components ready in $((SECONDS - total))s; manifest: $manifest"
