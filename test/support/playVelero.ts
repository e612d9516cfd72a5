/**
 * Plays Velero's part where a suite does not run the real one: a Backup handed over in
 * ReadyToStart is moved to InProgress, runs for a while, and is moved to Completed. Every
 * write is a PUT carrying the version it read (409: read again), so the player never
 * overwrites the gate; a write the API server did not answer (it was restarted) is retried
 * from a fresh read until its deadline.
 */
import { isApiError, VELERO_GROUP, VELERO_VERSION, type Clients, type VeleroObject } from "./objects.js";
import { sleep } from "./wait.js";

export interface PlayerOptions {
  namespace: string;
  /** Run time of one backup, ms: [min, max). */
  runMs: readonly [number, number];
  /** Uniform in [0, 1): the suite's seeded PRNG. */
  rand: () => number;
  /** Give up on one phase write after this long (the API server may be down meanwhile). Default 120 s. */
  writeDeadlineMs?: number;
}

export interface PlayedRun {
  /** resourceVersion of the player's InProgress and Completed writes. */
  inProgressRv?: bigint;
  completedRv?: bigint;
}

export class VeleroPlayer {
  readonly runs = new Map<string, PlayedRun>();
  /** PUTs sent (409s included). */
  writes = 0;
  readonly failures: unknown[] = [];
  private readonly active = new Set<Promise<void>>();

  constructor(
    private readonly c: Clients,
    private readonly o: PlayerOptions,
  ) {}

  /** Runs a backup that is ReadyToStart, once; later calls for the same name do nothing. */
  take(obj: VeleroObject): void {
    const name = obj.metadata.name;
    if (this.runs.has(name)) return;
    const run: PlayedRun = {};
    this.runs.set(name, run);
    const p = (async () => {
      const started = await this.setPhase(obj, "ReadyToStart", "InProgress");
      run.inProgressRv = BigInt(started.metadata.resourceVersion ?? "0");
      const [min, max] = this.o.runMs;
      await sleep(min + this.o.rand() * (max - min));
      const done = await this.setPhase(started, "InProgress", "Completed");
      run.completedRv = BigInt(done.metadata.resourceVersion ?? "0");
    })()
      .catch((e: unknown) => {
        this.failures.push(e);
      })
      .finally(() => this.active.delete(p));
    this.active.add(p);
  }

  /** Resolves when every run taken so far has finished. */
  async idle(): Promise<void> {
    while (this.active.size > 0) await Promise.allSettled([...this.active]);
  }

  /** PUT `to` on the object held (from phase `from`); on 409 or no answer, read again and retry. */
  async setPhase(held: VeleroObject, from: string, to: string): Promise<VeleroObject> {
    const api = this.c.custom;
    const ref = { group: VELERO_GROUP, version: VELERO_VERSION, namespace: this.o.namespace, plural: "backups", name: held.metadata.name };
    const deadline = Date.now() + (this.o.writeDeadlineMs ?? 120_000);
    let cur: VeleroObject | undefined = held;
    for (;;) {
      try {
        cur ??= (await api.getNamespacedCustomObject(ref)) as VeleroObject;
        const phase = (cur.status?.phase as string | undefined) ?? "";
        if (phase === to) return cur;
        if (phase !== from) throw new Error(`player: ${ref.name} is ${phase || "(no phase)"}, expected ${from} before ${to}`);
        this.writes++;
        return (await api.replaceNamespacedCustomObject({ ...ref, body: { ...cur, status: { ...cur.status, phase: to } } })) as VeleroObject;
      } catch (e) {
        if (e instanceof Error && e.message.startsWith("player:")) throw e;
        if (Date.now() > deadline) throw e;
        cur = undefined;
        if (!isApiError(e, 409)) await sleep(250);
      }
    }
  }
}
