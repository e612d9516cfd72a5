/**
 * Finds the binaries built by `bash tools/build.sh`, through the manifest it
 * writes at ${BACKUP_GATE_TOOLS:-$HOME/.cache/backup-gate/tools}/current.json.
 */
import { accessSync, constants, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export type ToolName =
  | "etcd"
  | "kube-apiserver"
  | "controlplane"
  | "s3"
  | "velero"
  | "velero-plugin-for-aws"
  | "probe"
  | "helm"
  | "promtool"
  | "kubectl"
  // The test node (test/support/node.ts); "images" is the images.json of tools/images.sh.
  | "kubelet"
  | "kube-controller-manager"
  | "kube-scheduler"
  | "velero-restore-helper"
  | "pause"
  | "images"
  // CSI on the test node; "snapshot-crds" is a YAML file.
  | "csi-hostpath"
  | "csi-provisioner"
  | "csi-snapshotter"
  | "snapshot-controller"
  | "snapshot-crds";

interface Manifest {
  cache: string;
  versions: Record<string, string>;
  paths: Record<string, string>;
}

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export function toolsCacheDir(): string {
  return process.env.BACKUP_GATE_TOOLS ?? join(homedir(), ".cache", "backup-gate", "tools");
}

const HINT = "run `bash tools/build.sh` from the repository root first";

let cached: Manifest | undefined;
function manifest(): Manifest {
  if (cached) return cached;
  const file = join(toolsCacheDir(), "current.json");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new Error(`test binaries not built: ${file} is missing; ${HINT}`);
  }
  cached = JSON.parse(text) as Manifest;
  return cached;
}

/** Absolute path of a built tool; throws a clear error if it is missing. */
export function toolPath(name: ToolName): string {
  const p = manifest().paths[name];
  if (!p) throw new Error(`test binary ${name} is not in the tools manifest; ${HINT}`);
  try {
    accessSync(p, name === "images" || name === "snapshot-crds" ? constants.R_OK : constants.X_OK);
  } catch {
    throw new Error(`test binary ${name} not found at ${p}; ${HINT}`);
  }
  return p;
}

export function toolVersion(name: ToolName): string | undefined {
  return manifest().versions[name];
}

/** A script from tools/ in this repository. */
export function repoScript(name: string): string {
  return join(repoRoot, "tools", name);
}
