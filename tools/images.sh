#!/usr/bin/env bash
# Writes the test node's container images as docker-save tarballs, with no
# registry and no Docker engine: one hand-written layer per image (a tar made
# with --numeric-owner --owner=0, sorted, mtime 0, so the same inputs give the
# same digest), a config JSON naming that layer's diff_id, and a manifest.json
# with RepoTags. `ctr -n k8s.io images import FILE` loads them.
#
#   images.sh OUTDIR      (inputs from the environment, all absolute paths:)
#   PAUSE_BIN BUSYBOX_BIN VELERO_BIN RESTORE_HELPER_BIN AWS_PLUGIN_BIN PROBE_BIN
#
# OUTDIR gets pause.tar, busybox.tar, velero.tar and images.json
# ({"tag": "...", "images": {"pause": {"ref", "file"}, ...}}, files relative to
# images.json); the tag is IMAGE_TAG.
#
# Images:
#   pause    /pause (tools/pause)                                    entrypoint /pause
#   busybox  Debian's static busybox with one link per applet in /bin
#   velero   busybox + /velero + /velero-restore-helper, and the AWS and probe
#            plugins in /plugins-baked (velero install mounts an emptyDir on
#            /plugins, which would hide anything baked there)
set -euo pipefail
OUT="$1"
TAG="${IMAGE_TAG:?IMAGE_TAG}"
REPO=backup-gate.local
for v in PAUSE_BIN BUSYBOX_BIN VELERO_BIN RESTORE_HELPER_BIN AWS_PLUGIN_BIN PROBE_BIN; do
  [ -x "${!v:-}" ] || { echo "images.sh: $v (${!v:-unset}) is not an executable file" >&2; exit 1; }
done
WORK="$(mktemp -d "$OUT/.work-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

sha() { sha256sum "$1" | cut -d' ' -f1; }

# image NAME ROOTFS ENTRYPOINT_JSON ENV_JSON: writes $OUT/NAME.tar
image() {
  local name="$1" rootfs="$2" entry="$3" env="$4" d="$WORK/$1" layer diff cfg cfgsha
  mkdir -p "$d"
  tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$rootfs" -cf "$d/layer.tar" $(cd "$rootfs" && ls -A)
  diff="$(sha "$d/layer.tar")"
  mkdir -p "$d/out/$diff"; mv "$d/layer.tar" "$d/out/$diff/layer.tar"
  cfg="$d/config.json"
  printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Entrypoint":%s,"Env":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"backup-gate tools/images.sh"}]}' \
    "$entry" "$env" "$diff" >"$cfg"
  cfgsha="$(sha "$cfg")"; mv "$cfg" "$d/out/$cfgsha.json"
  printf '[{"Config":"%s.json","RepoTags":["%s/%s:%s"],"Layers":["%s/layer.tar"]}]' \
    "$cfgsha" "$REPO" "$name" "$TAG" "$diff" >"$d/out/manifest.json"
  tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 -C "$d/out" -cf "$OUT/$name.tar" manifest.json "$cfgsha.json" "$diff"
  rm -rf "$d"
}

busybox_root() { # busybox_root DIR: a minimal root with busybox and its applet links
  local r="$1" a
  mkdir -p "$r/bin" "$r/tmp" "$r/etc" "$r/root" "$r/proc" "$r/sys" "$r/dev" "$r/var/run"
  chmod 1777 "$r/tmp"
  cp "$BUSYBOX_BIN" "$r/bin/busybox"
  for a in $("$BUSYBOX_BIN" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
}

PATHENV='["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'

r="$WORK/rootfs-pause"; mkdir -p "$r"; cp "$PAUSE_BIN" "$r/pause"
image pause "$r" '["/pause"]' "$PATHENV"

r="$WORK/rootfs-busybox"; busybox_root "$r"
image busybox "$r" '["/bin/sh"]' "$PATHENV"

r="$WORK/rootfs-velero"; busybox_root "$r"
cp "$VELERO_BIN" "$r/velero"; cp "$RESTORE_HELPER_BIN" "$r/velero-restore-helper"
mkdir -p "$r/plugins-baked" "$r/home/velero"
cp "$AWS_PLUGIN_BIN" "$r/plugins-baked/velero-plugin-for-aws"
cp "$PROBE_BIN" "$r/plugins-baked/backup-gate-probe"
image velero "$r" '["/velero"]' '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","HOME=/home/velero"]'

cat >"$OUT/images.json" <<JSON
{
  "tag": "$TAG",
  "images": {
    "pause": {"ref": "$REPO/pause:$TAG", "file": "pause.tar"},
    "busybox": {"ref": "$REPO/busybox:$TAG", "file": "busybox.tar"},
    "velero": {"ref": "$REPO/velero:$TAG", "file": "velero.tar"}
  }
}
JSON
