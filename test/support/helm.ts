/**
 * Renders charts/backup-gate with the real helm (built by tools/build.sh) and parses what it
 * prints. Both the chart unit test and the install test go through here.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { repoRoot, toolPath } from "./tools.js";

export const CHART_DIR = join(repoRoot, "charts", "backup-gate");

/** A rendered object, as parsed from YAML. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export interface RenderOptions {
  /** Values, as a values file would hold them. */
  values?: Record<string, unknown>;
  namespace?: string;
  release?: string;
}

export type RenderResult = { ok: true; objects: K8sObject[]; text: string } | { ok: false; error: string };

/** `helm template RELEASE charts/backup-gate --namespace NS -f values`; never throws for a chart error. */
export async function helmTemplate(o: RenderOptions = {}): Promise<RenderResult> {
  const run = await runHelm(["template", ...releaseArgs(o)], o.values);
  if (run.code !== 0) return { ok: false, error: run.stderr.trim() || `helm exited ${run.code}` };
  return { ok: true, objects: parseObjects(run.stdout), text: run.stdout };
}

/**
 * `helm install --dry-run=server` against a cluster: what `helm install` would print (the
 * manifest and NOTES.txt), checked by that API server, changing nothing. Throws on failure.
 */
export async function helmInstallDryRun(kubeconfig: string, o: RenderOptions = {}): Promise<string> {
  const run = await runHelm(["install", ...releaseArgs(o), "--dry-run=server", "--kubeconfig", kubeconfig], o.values);
  if (run.code !== 0) throw new Error(`helm install --dry-run=server failed: ${run.stderr.trim()}`);
  return run.stdout;
}

/** A `--post-renderer`: helm pipes the rendered manifests through `cmd args...` before applying them. */
export interface PostRenderer {
  cmd: string;
  args: string[];
}

/** `helm install` (or `helm uninstall --wait` with `uninstall`) against a cluster; throws with helm's message. */
export async function helmInstall(kubeconfig: string, o: RenderOptions & { postRenderer?: PostRenderer } = {}): Promise<string> {
  const post = o.postRenderer ? ["--post-renderer", o.postRenderer.cmd, ...o.postRenderer.args.flatMap((a) => ["--post-renderer-args", a])] : [];
  const run = await runHelm(["install", ...releaseArgs(o), "--kubeconfig", kubeconfig, ...post], o.values);
  if (run.code !== 0) throw new Error(`helm install failed: ${run.stderr.trim()}`);
  return run.stdout;
}

export async function helmUninstall(kubeconfig: string, o: Pick<RenderOptions, "namespace" | "release"> = {}): Promise<void> {
  const run = await runHelm(["uninstall", o.release ?? "backup-gate", "--namespace", o.namespace ?? "backup-gate", "--wait", "--kubeconfig", kubeconfig]);
  if (run.code !== 0) throw new Error(`helm uninstall failed: ${run.stderr.trim()}`);
}

/** `helm lint --strict` of the chart with these values: helm's own checks of a chart; throws with its report. */
export async function helmLint(values: Record<string, unknown> = {}): Promise<void> {
  const run = await runHelm(["lint", CHART_DIR, "--strict"], values);
  if (run.code !== 0) throw new Error(`helm lint failed:\n${run.stdout}${run.stderr}`);
}

const releaseArgs = (o: RenderOptions) => [o.release ?? "backup-gate", CHART_DIR, "--namespace", o.namespace ?? "backup-gate"];

async function runHelm(args: string[], values?: Record<string, unknown>): Promise<{ code: number; stdout: string; stderr: string }> {
  // helm keeps config and caches under $HOME; these runs need none of them.
  const home = mkdtempSync(join(tmpdir(), "backup-gate-helm-"));
  try {
    const valuesFile = join(home, "values.json");
    writeFileSync(valuesFile, JSON.stringify(values ?? {}));
    const env = { ...process.env, HELM_CONFIG_HOME: join(home, "config"), HELM_CACHE_HOME: join(home, "cache"), HELM_DATA_HOME: join(home, "data") };
    return await new Promise((resolve, reject) => {
      execFile(toolPath("helm"), [...args, ...(values ? ["--values", valuesFile] : [])], { env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") {
          reject(err instanceof Error ? err : new Error(err.message));
          return;
        }
        resolve({ code: typeof err?.code === "number" ? err.code : 0, stdout, stderr });
      });
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** Renders and throws with helm's message if the chart refuses the values. */
export async function renderChart(o: RenderOptions = {}): Promise<K8sObject[]> {
  const r = await helmTemplate(o);
  if (!r.ok) throw new Error(`helm template failed: ${r.error}`);
  return r.objects;
}

/** Every non-empty YAML document of a multi-document text. */
export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(`unreadable YAML: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** kind/namespace/name, the identity of an object in a rendered set. */
export function objectKey(o: K8sObject): string {
  return `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
}
