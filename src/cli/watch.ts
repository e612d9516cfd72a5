import { Writable } from "node:stream";
import { pino } from "pino";
import { createRequester } from "../kube/http.js";
import { createClusterCache } from "../cluster/index.js";
import { createPolicySource } from "../policy/index.js";
import { loadKubeConfig } from "./kubeconfig.js";
import { readPolicy } from "./live.js";
import type { Format } from "./output.js";
import { clearProgress, progress } from "./progress.js";
import { renderQueue, type LiveCommandOptions } from "./queue.js";
import { UsageError } from "./readInput.js";

// `queue --watch`: the same watches the gate keeps (its ClusterCache and policy source), and a
// redraw after each change they apply; never a poll. Changes arriving together are drawn once.

export interface WatchOptions extends LiveCommandOptions {
  /** Longest wait for the first complete view before giving up with the last error seen. */
  readonly syncTimeoutMs?: number;
  /** Changes within this long are drawn once. */
  readonly settleMs?: number;
}

/** Draws the queue, then again after every change, until the process is stopped. */
export async function watchQueue(o: WatchOptions, format: Format, out: NodeJS.WriteStream = process.stdout): Promise<never> {
  const kc = await loadKubeConfig(o);
  // Fails at once, in one line, when the cluster cannot be reached or read.
  const first = await readPolicy(createRequester(kc, 30_000), o.gateNamespace);
  let lastProblem = "";
  const log = pino(
    { level: "warn" },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        try {
          lastProblem = String((JSON.parse(chunk.toString()) as { msg?: string }).msg ?? lastProblem);
        } catch {
          /* not JSON */
        }
        done();
      },
    }),
  );
  const limitMs = o.syncTimeoutMs ?? 60_000;
  const timeout = AbortSignal.timeout(limitMs);
  const synced = (p: Promise<void>) =>
    Promise.race([p, new Promise<never>((_, reject) => timeout.addEventListener("abort", reject, { once: true }))]).catch(() => {
      throw new UsageError(`cannot read the cluster within ${Math.round(limitMs / 1000)}s${lastProblem ? `: ${lastProblem}` : ""}`);
    });
  const show = progress();
  show?.("reading the cluster...");
  const policy = createPolicySource(kc, { namespace: o.gateNamespace, log });
  await synced(policy.start());
  const veleroNamespace = first.policy.veleroNamespace;
  const cache = createClusterCache(kc, { veleroNamespace, log });
  await cache.start();
  await synced(cache.waitForSync());
  clearProgress();

  const note = (): string | undefined => {
    const p = policy.current();
    if (!policy.valid()) return `the policy ConfigMap is invalid (${policy.refusal() ?? "refused"}); planning with the last good policy, as the gate does`;
    if (p.veleroNamespace !== veleroNamespace) return `the policy's veleroNamespace is now ${p.veleroNamespace}; restart the watch to follow it`;
    return undefined;
  };
  let last = "";
  const draw = () => {
    const n = note();
    const text = renderQueue(
      { snapshot: { view: cache.view, backups: cache.backups() }, policy: policy.current(), ...(n ? { policyNote: n } : {}) },
      Date.now(),
      format,
    );
    const frame = format === "json" ? JSON.stringify(JSON.parse(text)) : format === "yaml" ? `---\n${text}` : text;
    if (frame === last) return;
    last = frame;
    // A terminal gets the table redrawn in place; a pipe gets each state in turn.
    if (out.isTTY && (format === "text" || format === "wide")) out.write(`\x1b[H\x1b[2J${frame}\n`);
    else out.write(`${frame}\n${format === "text" || format === "wide" ? "\n" : ""}`);
  };
  let pending: NodeJS.Timeout | undefined;
  const changed = () => {
    pending ??= setTimeout(() => {
      pending = undefined;
      draw();
    }, o.settleMs ?? 50);
  };
  cache.onChange(changed);
  policy.onChange(changed);
  draw();
  return new Promise<never>(() => {});
}
