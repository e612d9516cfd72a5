/**
 * The live queue view: a table redrawn in place (plain ANSI) on a terminal, or, when stdout
 * is not a terminal (CI, a test), one line per change.
 */
import type { LiveRow } from "./tracker.js";

const ESC = "\x1b[";
const dim = (s: string) => `${ESC}2m${s}${ESC}0m`;
const bold = (s: string) => `${ESC}1m${s}${ESC}0m`;

function colourPhase(phase: string): string {
  if (phase === "Completed") return `${ESC}32m${phase}${ESC}0m`;
  if (phase === "InProgress" || phase === "ReadyToStart") return `${ESC}34m${phase}${ESC}0m`;
  if (phase === "Queued" || phase === "New") return `${ESC}33m${phase}${ESC}0m`;
  if (/Fail/.test(phase)) return `${ESC}31m${phase}${ESC}0m`;
  return phase;
}

function fit(s: string, n: number): string {
  if (n <= 0) return "";
  if (s.length > n) return n <= 1 ? s.slice(0, n) : `${s.slice(0, n - 1)}…`;
  return s + " ".repeat(n - s.length);
}

/** Waiting and running backups: the gate's reason; finished ones: how long they waited and ran. */
function reasonOf(r: LiveRow): string {
  if (r.done && r.waited !== undefined && r.ran !== undefined) return `waited ${r.waited.toFixed(1)}s, ran ${r.ran.toFixed(1)}s`;
  return r.reason;
}

/** A note in lines of at most `width` columns (continuations indented), so nothing is cut. */
function wrap(s: string, width: number): string[] {
  const out: string[] = [];
  let rest = s;
  while (rest.length > width) {
    const cut = rest.lastIndexOf(" ", width);
    const at = cut > width / 2 ? cut : width;
    out.push(rest.slice(0, at));
    rest = `    ${rest.slice(at).trimStart()}`;
  }
  out.push(rest);
  return out;
}

export interface ViewHeader {
  readonly elapsedSeconds: number;
  readonly slots: number;
  readonly level: string;
}

/** The table as lines (no colour when `colour` is false), cut to `width` columns. */
export function renderTable(rows: readonly LiveRow[], h: ViewHeader, width: number, colour = true): string[] {
  const inFlight = rows.filter((r) => r.phase === "ReadyToStart" || r.phase === "InProgress").length;
  const queued = rows.filter((r) => r.phase === "New" || r.phase === "Queued").length;
  const done = rows.filter((r) => r.done).length;
  const nameW = Math.max(8, ...rows.map((r) => r.name.length)) + 2;
  const phaseW = 16;
  const posW = 5;
  const waitCol = Math.min(34, Math.max(13, ...rows.map((r) => r.waitingFor.length + 2)));
  const reasonW = Math.max(10, width - nameW - phaseW - posW - waitCol);
  const head = `backup-gate queue  t=${h.elapsedSeconds.toFixed(1)}s  level ${h.level}  in flight ${inFlight}/${h.slots}  queued ${queued}  done ${done}/${rows.length}`;
  const out = [colour ? bold(fit(head, width).trimEnd()) : fit(head, width).trimEnd()];
  const header = fit("BACKUP", nameW) + fit("PHASE", phaseW) + fit("POS", posW) + fit("WAITING FOR", waitCol) + fit("REASON", reasonW);
  out.push(colour ? dim(header.trimEnd()) : header.trimEnd());
  for (const r of rows) {
    const phaseCell = fit(r.phase, phaseW);
    const line =
      fit(r.name, nameW) +
      (colour ? colourPhase(r.phase) + phaseCell.slice(r.phase.length) : phaseCell) +
      fit(r.position !== undefined ? String(r.position) : "", posW) +
      fit(r.waitingFor, waitCol) +
      fit(reasonOf(r), reasonW);
    out.push(line.trimEnd());
  }
  return out;
}

export class LiveView {
  private readonly tty: boolean;
  private last = new Map<string, string>();
  private notes: string[] = [];
  private drawnOnce = false;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stdout,
    tty?: boolean,
  ) {
    this.tty = tty ?? Boolean(out.isTTY);
  }

  /** A line kept under the table (a rejection, an admission warning). */
  note(s: string): void {
    this.notes.push(s);
    if (!this.tty) this.out.write(`${s}\n`);
  }

  draw(rows: readonly LiveRow[], h: ViewHeader): void {
    if (!this.tty) {
      for (const r of rows) {
        const key = `${r.phase}|${r.position ?? ""}|${r.waitingFor}`;
        if (this.last.get(r.name) === key) continue;
        this.last.set(r.name, key);
        const extra =
          r.phase === "Queued" || r.phase === "New"
            ? `${r.position !== undefined ? ` position ${r.position}` : ""}${r.waitingFor ? ` waiting for ${r.waitingFor}` : r.reason ? `: ${r.reason}` : ""}`
            : "";
        this.out.write(`+${h.elapsedSeconds.toFixed(1)}s ${r.name} ${r.phase}${extra}\n`);
      }
      return;
    }
    const width = Math.max(60, this.out.columns || Number(process.env.COLUMNS) || 120);
    const lines = renderTable(rows, h, width);
    const noteLines = this.notes.slice(-8).flatMap((n) => wrap(n, width));
    // Home, draw, clear to the end of each line and of the screen: no flicker.
    const body = [...lines, "", ...noteLines].map((l) => `${l}${ESC}K`).join("\n");
    this.out.write(`${this.drawnOnce ? "" : `${ESC}2J`}${ESC}H${body}\n${ESC}J`);
    this.drawnOnce = true;
  }
}
