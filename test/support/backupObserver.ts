/**
 * An independent witness of every Backup phase change in one namespace, for the chaos suite:
 * its own list+watch (not the gate's Reflector, which is under test), resumed from the last
 * version after any end and relisted after 410 Gone, so it survives API server restarts and
 * etcd compaction.
 *
 * Each step records the resourceVersion of the write that produced it. With one etcd and the
 * API server's watch cache off, resourceVersions are etcd revisions, one total order over
 * every write: "in flight at the same time" is decided on that order, not on clocks. A step
 * first seen through a relist is marked inexact (its version may be later than the change).
 */
import { Watch, type KubeConfig } from "@kubernetes/client-node";
import type { ControlPlane } from "./controlPlane.js";
import { clients, VELERO_GROUP, VELERO_VERSION, type VeleroObject } from "./objects.js";
import { sleep } from "./wait.js";

export interface PhaseStep {
  phase: string;
  rv: bigint;
  /** Local clock when seen. */
  at: number;
  /** backup-gate.io/promoted-by when the step was seen. */
  promotedBy?: string;
  /** False when the step was first seen through a relist. */
  exact: boolean;
}

export const IN_FLIGHT = new Set(["ReadyToStart", "InProgress"]);
export const QUEUED_PHASES = new Set(["", "New", "Queued"]);

type Listener = (name: string, obj: VeleroObject, step: PhaseStep | undefined) => void;

/** A list+watch of one collection that resumes and relists by itself until stopped. */
export class ListWatch<T extends { metadata: { name: string; resourceVersion?: string } }> {
  relists = 0;
  resumes = 0;
  private rv = "";
  private readonly names = new Set<string>();
  private stopped = false;
  private current?: AbortController;
  private loop?: Promise<void>;

  constructor(
    private readonly kc: KubeConfig,
    private readonly path: string,
    private readonly list: () => Promise<{ items: T[]; resourceVersion: string }>,
    private readonly apply: (obj: T, relisted: boolean) => void,
    private readonly remove: (name: string) => void,
  ) {}

  async start(): Promise<void> {
    await this.relist(false);
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.abort();
    await this.loop;
  }

  private async relist(counted = true): Promise<void> {
    const { items, resourceVersion } = await this.list();
    const seen = new Set<string>();
    for (const o of items) {
      seen.add(o.metadata.name);
      this.names.add(o.metadata.name);
      this.apply(o, counted);
    }
    for (const n of [...this.names])
      if (!seen.has(n)) {
        this.names.delete(n);
        this.remove(n);
      }
    this.rv = resourceVersion;
    if (counted) this.relists++;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const end = await this.watchOnce();
      if (this.stopped) return;
      if (end === "expired") {
        for (;;) {
          try {
            await this.relist();
            break;
          } catch {
            if (this.stopped) return;
            await sleep(300);
          }
        }
      } else {
        this.resumes++;
        await sleep(200);
      }
    }
  }

  private watchOnce(): Promise<"expired" | "ended"> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (how: "expired" | "ended") => {
        if (!done) {
          done = true;
          this.current?.abort();
          resolve(how);
        }
      };
      const onEvent = (type: string, o: T & { code?: number }) => {
        if (type === "ERROR") {
          finish(o.code === 410 ? "expired" : "ended");
          return;
        }
        if (o.metadata?.resourceVersion) this.rv = o.metadata.resourceVersion;
        if (type === "BOOKMARK") return;
        if (type === "DELETED") {
          this.names.delete(o.metadata.name);
          this.remove(o.metadata.name);
          return;
        }
        this.names.add(o.metadata.name);
        this.apply(o, false);
      };
      new Watch(this.kc)
        .watch(this.path, { resourceVersion: this.rv, allowWatchBookmarks: true }, onEvent, (err) =>
          finish((err as { statusCode?: number } | null)?.statusCode === 410 ? "expired" : "ended"),
        )
        .then(
          (c) => {
            this.current = c;
            if (done || this.stopped) c.abort();
          },
          () => finish("ended"),
        );
    });
  }
}

export class BackupObserver {
  readonly history = new Map<string, PhaseStep[]>();
  readonly objects = new Map<string, VeleroObject>();
  private readonly listeners = new Set<Listener>();
  private lw!: ListWatch<VeleroObject>;

  private constructor(readonly namespace: string) {}

  static async start(cp: ControlPlane, namespace: string): Promise<BackupObserver> {
    const o = new BackupObserver(namespace);
    const c = clients(cp.kubeConfig);
    o.lw = new ListWatch<VeleroObject>(
      cp.kubeConfig,
      `/apis/velero.io/v1/namespaces/${namespace}/backups`,
      async () => {
        const l = (await c.custom.listNamespacedCustomObject({ group: VELERO_GROUP, version: VELERO_VERSION, namespace, plural: "backups" })) as {
          items: VeleroObject[];
          metadata: { resourceVersion: string };
        };
        return { items: l.items, resourceVersion: l.metadata.resourceVersion };
      },
      (obj, relisted) => o.apply(obj, relisted),
      (name) => o.objects.delete(name),
    );
    await o.lw.start();
    return o;
  }

  get relists(): number {
    return this.lw.relists;
  }
  get resumes(): number {
    return this.lw.resumes;
  }

  onChange(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  phase(name: string): string | undefined {
    const o = this.objects.get(name);
    return o ? ((o.status?.phase as string | undefined) ?? "") : undefined;
  }

  stop(): Promise<void> {
    return this.lw.stop();
  }

  private apply(obj: VeleroObject, relisted: boolean): void {
    const name = obj.metadata.name;
    this.objects.set(name, obj);
    const phase = (obj.status?.phase as string | undefined) ?? "";
    const steps = this.history.get(name) ?? [];
    let step: PhaseStep | undefined;
    if (steps.at(-1)?.phase !== phase) {
      step = {
        phase,
        rv: BigInt(obj.metadata.resourceVersion ?? "0"),
        at: Date.now(),
        exact: !relisted,
        ...(obj.metadata.annotations?.["backup-gate.io/promoted-by"] ? { promotedBy: obj.metadata.annotations["backup-gate.io/promoted-by"] as string } : {}),
      };
      steps.push(step);
      this.history.set(name, steps);
    }
    for (const l of this.listeners) l(name, obj, step);
  }
}

/**
 * [first in-flight version, first version out of flight after it) of a backup; end undefined
 * while it is in flight. In flight is the design's ReadyToStart and InProgress: Velero's
 * WaitingForPluginOperations and Finalizing no longer hold a slot.
 */
export function inFlightSpan(steps: readonly PhaseStep[] | undefined): { start: bigint; end?: bigint; exact: boolean } | undefined {
  if (!steps) return undefined;
  const i = steps.findIndex((s) => IN_FLIGHT.has(s.phase));
  if (i < 0) return undefined;
  const end = steps.slice(i + 1).find((s) => !IN_FLIGHT.has(s.phase));
  return { start: steps[i]!.rv, ...(end ? { end: end.rv } : {}), exact: steps[i]!.exact };
}
