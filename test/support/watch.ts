/**
 * Watch helper: starts a client-node watch, retrying while the API server
 * answers 429. Right after a CRD is installed, kube-apiserver refuses watches
 * on it with 429 Too Many Requests while the resource's watch cache is still
 * initializing (seen on 1.33: the first watch on velero.io backups a few
 * seconds after start-up).
 */
import { Watch, type KubeConfig } from "@kubernetes/client-node";
import { waitFor } from "./wait.js";

export interface StartedWatch {
  abort(): void;
  /** Error the watch ended with after it started, if any. */
  error(): unknown;
  /** Whether the watch has ended (by error, server close or abort). */
  ended(): boolean;
}

export async function startWatch(
  kc: KubeConfig,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  onEvent: (type: string, obj: any) => void, // eslint-disable-line @typescript-eslint/no-explicit-any
  opts: { timeoutMs?: number } = {},
): Promise<StartedWatch> {
  let endedWith: unknown;
  let ended = false;
  const controller = await waitFor(
    `watch on ${path} to be accepted (not 429)`,
    async () => {
      try {
        ended = false;
        endedWith = undefined;
        return await new Watch(kc).watch(path, query, onEvent, (err) => {
          ended = true;
          endedWith = err;
        });
      } catch (e) {
        if ((e as { statusCode?: number }).statusCode === 429) return undefined;
        throw e;
      }
    },
    { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: 250 },
  );
  return { abort: () => controller.abort(), error: () => endedWith, ended: () => ended };
}
