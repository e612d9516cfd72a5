#!/usr/bin/env bash
# Builds the gate's own container image as a docker-save tarball, with no registry, no Docker
# engine and no download: what the Dockerfile's final stage holds (/app/dist/src compiled by
# tsc, the production node_modules, package.json; USER 65532, WORKDIR /app, the Dockerfile's
# ENTRYPOINT and `serve`), with the Node.js runtime taken from this machine (its `node` binary
# and the shared libraries ldd names).
#
#   gate-image.sh [CACHE]     (default ${BACKUP_GATE_TOOLS:-$HOME/.cache/backup-gate/tools})
#
# Keyed by a hash of every input (node and its libraries, package.json, package-lock.json,
# tsconfig.json, src/, this script): CACHE/gate-image-<hash>/ holds gate.tar and
# gate-image.json ({"ref", "file"}); an existing one is reused, older ones are removed.
# Prints the path of gate-image.json, and nothing else, on stdout.
# Layer tars are made as tools/images.sh makes them (sorted, mtime 0, numeric owner), so the
# same inputs give the same image digest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${HOME:-}" ]; then HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"; export HOME; fi
CACHE="${1:-${BACKUP_GATE_TOOLS:-$HOME/.cache/backup-gate/tools}}"
REPO=backup-gate.local
NODE_BIN="$(readlink -f "$(command -v node)")"

# The runtime: node and the libraries its loader resolves (absolute paths, symlinks resolved).
runtime_files() {
  echo "$NODE_BIN"
  ldd "$NODE_BIN" | awk '/=>/ { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | grep '^/'
}

inputs_hash() {
  {
    for f in $(runtime_files); do sha256sum "$(readlink -f "$f")" | cut -d' ' -f1; done
    (cd "$ROOT" && find src -type f -print0 | sort -z | xargs -0 sha256sum)
    (cd "$ROOT" && sha256sum package.json package-lock.json tsconfig.json Dockerfile tools/gate-image.sh)
  } | sha256sum | cut -c1-12
}

TAG="$(inputs_hash)"
OUT="$CACHE/gate-image-$TAG"
if [ -f "$OUT/gate-image.json" ]; then
  echo "$OUT/gate-image.json"
  exit 0
fi
mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/.gate-image-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
r="$WORK/rootfs"
mkdir -p "$r/app" "$r/tmp" "$r/etc" "$r/usr/local/bin"
chmod 1777 "$r/tmp"

# dist/src: the Dockerfile's tsc run, over src only (the repository's tsconfig also takes tests).
printf '{"extends": "%s/tsconfig.json", "compilerOptions": {"rootDir": "%s", "outDir": "%s/dist", "noEmit": false, "typeRoots": ["%s/node_modules/@types"]}, "include": ["%s/src"]}\n' \
  "$ROOT" "$ROOT" "$WORK" "$ROOT" "$ROOT" >"$WORK/tsconfig.json"
"$ROOT/node_modules/.bin/tsc" -p "$WORK/tsconfig.json" >&2
mkdir -p "$r/app/dist"
cp -a "$WORK/dist/src" "$r/app/dist/src"
cp "$ROOT/package.json" "$r/app/"

# Production node_modules: the top-level package directories `npm ls --omit=dev` names (a
# production package's nested node_modules holds only its own production dependencies).
nm="$(readlink -f "$ROOT/node_modules")"
(cd "$ROOT" && npm ls --omit=dev --all --parseable 2>/dev/null) |
  sed -n "s#^$ROOT/node_modules/##p" | grep -E '^(@[^/]+/)?[^/]+$' | sort -u |
  while read -r p; do mkdir -p "$r/app/node_modules/$(dirname "$p")"; cp -a "$nm/$p" "$r/app/node_modules/$p"; done

# The runtime at the same paths as on this machine, so its loader finds every library.
for f in $(runtime_files); do
  mkdir -p "$r$(dirname "$f")"
  cp -L "$f" "$r$f"
done
ln -s "$NODE_BIN" "$r/usr/local/bin/node"
printf 'root:x:0:0:root:/root:/bin/false\nnonroot:x:65532:65532:nonroot:/home/nonroot:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$r/etc/group"

d="$WORK/image"
mkdir -p "$d"
tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$r" -cf "$d/layer.tar" $(cd "$r" && ls -A)
diff="$(sha256sum "$d/layer.tar" | cut -d' ' -f1)"
mkdir -p "$d/$diff"
mv "$d/layer.tar" "$d/$diff/layer.tar"
ENTRYPOINT="$(sed -n 's/^ENTRYPOINT \(\[.*\]\)$/\1/p' "$ROOT/Dockerfile")"
[ -n "$ENTRYPOINT" ] || { echo "gate-image.sh: the Dockerfile has no ENTRYPOINT in exec form" >&2; exit 1; }
printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"User":"65532:65532","Entrypoint":%s,"Cmd":["serve"],"Env":["PATH=/usr/local/bin:/usr/bin:/bin","NODE_ENV=production"],"WorkingDir":"/app","ExposedPorts":{"8443/tcp":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"backup-gate tools/gate-image.sh"}]}' \
  "$ENTRYPOINT" "$diff" >"$d/config.json"
cfgsha="$(sha256sum "$d/config.json" | cut -d' ' -f1)"
mv "$d/config.json" "$d/$cfgsha.json"
printf '[{"Config":"%s.json","RepoTags":["%s/gate:%s"],"Layers":["%s/layer.tar"]}]' "$cfgsha" "$REPO" "$TAG" "$diff" >"$d/manifest.json"
mkdir -p "$WORK/out"
tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 -C "$d" -cf "$WORK/out/gate.tar" manifest.json "$cfgsha.json" "$diff"
printf '{"ref": "%s/gate:%s", "repository": "%s/gate", "tag": "%s", "file": "gate.tar"}\n' "$REPO" "$TAG" "$REPO" "$TAG" >"$WORK/out/gate-image.json"

rm -rf "$OUT"
mv "$WORK/out" "$OUT"
for old in "$CACHE"/gate-image-*/; do [ "${old%/}" = "$OUT" ] || rm -rf "$old"; done
echo "$OUT/gate-image.json"
