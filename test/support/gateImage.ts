/**
 * The gate's container image, built from this checkout by tools/gate-image.sh (no registry, no
 * Docker; cached by a hash of its inputs, so an unchanged tree reuses it in about a second).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { repoScript } from "./tools.js";

export interface GateImage {
  /** e.g. backup-gate.local/gate:0123456789ab */
  ref: string;
  repository: string;
  tag: string;
  /** The docker-save tarball (`ctr images import` loads it). */
  file: string;
}

export function buildGateImage(): GateImage {
  const json = execFileSync("nice", ["-n", "10", "bash", repoScript("gate-image.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 16 << 20,
  }).trim();
  const m = JSON.parse(readFileSync(json, "utf8")) as Omit<GateImage, "file"> & { file: string };
  return { ...m, file: join(dirname(json), m.file) };
}
