import { IN_FLIGHT_PHASES, KEYS, type BackupInfo } from "./model.js";

// Backups by namespace and name, with the two subsets an admission review asks for kept up to
// date as backups change: the backups in flight, and the runs of each Schedule. A review then
// reads a handful of backups instead of filtering every backup in the cluster.

export class BackupIndex {
  private readonly byKey = new Map<string, BackupInfo>();
  private readonly flying = new Map<string, BackupInfo>();
  private readonly runs = new Map<string, Map<string, BackupInfo>>();
  private list?: readonly BackupInfo[];
  private flyingList?: readonly BackupInfo[];

  /** Adds or replaces a backup; true when it replaced one. */
  set(b: BackupInfo): boolean {
    const key = keyOf(b.namespace, b.name);
    const old = this.byKey.get(key);
    if (old) this.unfile(key, old);
    this.byKey.set(key, b);
    this.list = undefined;
    if (IN_FLIGHT_PHASES.has(b.phase)) {
      this.flying.set(key, b);
      this.flyingList = undefined;
    }
    const schedule = b.labels[KEYS.scheduleName];
    if (schedule !== undefined) {
      let runs = this.runs.get(schedule);
      if (!runs) this.runs.set(schedule, (runs = new Map()));
      runs.set(key, b);
    }
    return old !== undefined;
  }

  /** True when the backup was there. */
  delete(namespace: string, name: string): boolean {
    const key = keyOf(namespace, name);
    const old = this.byKey.get(key);
    if (!old) return false;
    this.unfile(key, old);
    this.byKey.delete(key);
    this.list = undefined;
    return true;
  }

  get(namespace: string, name: string): BackupInfo | undefined {
    return this.byKey.get(keyOf(namespace, name));
  }

  /** Every backup, in the order first set (the same array until the next change). */
  all(): readonly BackupInfo[] {
    return (this.list ??= [...this.byKey.values()]);
  }

  /** Backups in an in-flight phase (ReadyToStart, InProgress). */
  inFlight(): readonly BackupInfo[] {
    return (this.flyingList ??= [...this.flying.values()]);
  }

  /** Backups labelled as runs of this Schedule, in any phase. */
  runsOf(schedule: string): readonly BackupInfo[] {
    const runs = this.runs.get(schedule);
    return runs ? [...runs.values()] : [];
  }

  private unfile(key: string, old: BackupInfo): void {
    if (this.flying.delete(key)) this.flyingList = undefined;
    const schedule = old.labels[KEYS.scheduleName];
    if (schedule === undefined) return;
    const runs = this.runs.get(schedule);
    runs?.delete(key);
    if (runs?.size === 0) this.runs.delete(schedule);
  }
}

function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
