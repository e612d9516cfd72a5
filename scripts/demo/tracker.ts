/**
 * Records what each Backup of the burst did, from the API server: fed by a watch (for
 * timing to the millisecond) and by the live view's polls (to fill any gap). The first time
 * a state is seen wins.
 */
import type { VeleroObject } from "../../test/support/objects.js";
import { TERMINAL_BACKUP_PHASES } from "../../test/support/objects.js";
import type { BackupRecord } from "./report.js";

const WAITING_FOR = "backup-gate.io/waiting-for";
const REASON = "backup-gate.io/reason";
const WAITING_PHASES = new Set(["", "New", "Queued"]);

interface Mutable {
  name: string;
  description?: string;
  arrival: number;
  start?: number;
  end?: number;
  phase: string;
  position?: number;
  waitingFor: string[];
  waitedForSlot: boolean;
  reason?: string;
  /** The current waiting-for and reason annotations, for the live view. */
  currentWaitingFor: string;
  currentReason: string;
}

export interface LiveRow {
  readonly name: string;
  readonly phase: string;
  readonly position?: number;
  readonly waitingFor: string;
  readonly reason: string;
  readonly done: boolean;
  /** Seconds waited (creation to start) and run (start to end), once known. */
  readonly waited?: number;
  readonly ran?: number;
}

export class Tracker {
  private readonly records = new Map<string, Mutable>();
  private readonly order: string[] = [];

  /** A backup this demo created (arrival = just before the create call). */
  created(name: string, arrival: number, description?: string): void {
    const r = this.ensure(name, arrival);
    r.arrival = Math.min(r.arrival, arrival);
    if (description) r.description = description;
  }

  /** Forget a name whose create was refused. */
  refused(name: string): void {
    this.records.delete(name);
    const i = this.order.indexOf(name);
    if (i >= 0) this.order.splice(i, 1);
  }

  observe(o: VeleroObject, now: number): void {
    const name = o.metadata.name;
    const r = this.ensure(name, now);
    const phase = String(o.status?.phase ?? "");
    r.phase = phase;
    r.position = typeof o.status?.queuePosition === "number" && o.status.queuePosition > 0 ? o.status.queuePosition : undefined;
    const ann = (o.metadata.annotations ?? {}) as Record<string, string>;
    r.currentWaitingFor = ann[WAITING_FOR] ?? "";
    r.currentReason = ann[REASON] ?? "";
    if (WAITING_PHASES.has(phase)) {
      if (r.start === undefined) {
        for (const w of r.currentWaitingFor
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)) {
          if (!r.waitingFor.includes(w)) r.waitingFor.push(w);
        }
        if (r.currentReason) {
          r.reason ??= r.currentReason;
          if (/free slot/.test(r.currentReason)) r.waitedForSlot = true;
        }
      }
      return;
    }
    r.start ??= now;
    if (TERMINAL_BACKUP_PHASES.has(phase)) r.end ??= now;
  }

  names(): string[] {
    return [...this.order];
  }

  allDone(): boolean {
    return this.order.length > 0 && this.order.every((n) => this.records.get(n)!.end !== undefined);
  }

  rows(): LiveRow[] {
    return this.order.map((n) => {
      const r = this.records.get(n)!;
      return {
        name: r.name,
        phase: r.phase || "New",
        ...(r.position !== undefined ? { position: r.position } : {}),
        waitingFor: WAITING_PHASES.has(r.phase) ? r.currentWaitingFor : "",
        reason: r.currentReason,
        done: r.end !== undefined,
        ...(r.start !== undefined ? { waited: (r.start - r.arrival) / 1000 } : {}),
        ...(r.start !== undefined && r.end !== undefined ? { ran: (r.end - r.start) / 1000 } : {}),
      };
    });
  }

  records_(): BackupRecord[] {
    return this.order.map((n) => {
      const r = this.records.get(n)!;
      return {
        name: r.name,
        ...(r.description ? { description: r.description } : {}),
        arrival: r.arrival,
        ...(r.start !== undefined ? { start: r.start } : {}),
        ...(r.end !== undefined ? { end: r.end } : {}),
        phase: r.phase,
        waitingFor: [...r.waitingFor],
        waitedForSlot: r.waitedForSlot,
        ...(r.reason ? { reason: r.reason } : {}),
      };
    });
  }

  private ensure(name: string, now: number): Mutable {
    let r = this.records.get(name);
    if (!r) {
      r = { name, arrival: now, phase: "", waitingFor: [], waitedForSlot: false, currentWaitingFor: "", currentReason: "" };
      this.records.set(name, r);
      this.order.push(name);
    }
    return r;
  }
}
