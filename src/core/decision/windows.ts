import { KEYS, type BackupInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { Timestamps } from "../times.js";
import { globMatcher } from "../velero/glob.js";
import { DAYS, type Day, type Span, type StartWindow } from "../windowPolicy.js";
import type { Ordered } from "./order.js";
import { windowFailedReason, windowFailedTenantReason, type WindowWait } from "./reasons.js";

// Start windows (docs/rules.md, "Windows"): a backup a window governs starts only while the
// window is open. Outside it the backup is held, and queues behind every backup that may
// start (so it blocks none of them); its order among the held ones stays the queue's. Time
// zone arithmetic is the runtime's Intl.DateTimeFormat (ICU's zone data): wall-clock time,
// so a span starting in the hour a DST jump skips opens at the jump, and one in the hour that
// repeats is open in both passes. With no `windows` in the policy nothing here runs.

/** How a queued backup stands with its window now. */
export interface WindowState {
  readonly wait: WindowWait;
  /** true: outside its window, it waits. false: outside it, but it waited maxWaitSeconds and starts anyway. */
  readonly held: boolean;
}

/** A backup failed for waiting past its window's maxWaitSeconds (onMaxWait: Fail). */
export interface MissedWindow {
  readonly backup: string;
  readonly reason: string;
  /** The reason in words its tenant may read (names no other backup). */
  readonly tenantReason: string;
}

export interface Windowed {
  /** The queue order: backups that may start, then the held ones (each part in the order it had). */
  readonly order: Ordered[];
  /** Per backup in `order`: its window's state, for backups outside their window. */
  readonly states: readonly (WindowState | undefined)[];
  readonly missed: MissedWindow[];
  /** The first instant at which a window these backups follow opens or closes, or a max wait ends. */
  readonly validUntil: number;
}

/** Applies the policy's windows to the queue order at `now`. */
export function applyWindows(
  queued: readonly Ordered[],
  windows: readonly StartWindow[],
  now: number,
  times: Timestamps,
  zones = new Zones(),
): Windowed {
  const clocks = new Map<number, WindowClock>();
  const clockOf = (i: number): WindowClock => {
    let c = clocks.get(i);
    if (!c) clocks.set(i, (c = windowClock(windows[i] as StartWindow, i, now, zones)));
    return c;
  };
  const free: Ordered[] = [];
  const freeStates: (WindowState | undefined)[] = [];
  const held: Ordered[] = [];
  const heldStates: WindowState[] = [];
  const missed: MissedWindow[] = [];
  let validUntil = Infinity;
  for (const o of queued) {
    const i = windowOf(o.backup, windows);
    if (i === undefined) {
      free.push(o);
      freeStates.push(undefined);
      continue;
    }
    const c = clockOf(i);
    validUntil = Math.min(validUntil, c.nextChange);
    if (c.open) {
      free.push(o);
      freeStates.push(undefined);
      continue;
    }
    const w = windows[i] as StartWindow;
    const created = times.parse(o.backup.creationTimestamp);
    const deadline = w.maxWaitSeconds !== undefined && Number.isFinite(created) ? created + w.maxWaitSeconds * 1000 : Infinity;
    const wait: WindowWait = {
      ...c.wait,
      ...(deadline < Infinity ? { maxWait: { seconds: w.maxWaitSeconds as number, deadline, onMaxWait: w.onMaxWait } } : {}),
    };
    if (now < deadline) {
      validUntil = Math.min(validUntil, deadline);
      held.push(o);
      heldStates.push({ wait, held: true });
    } else if (w.onMaxWait === "Start") {
      free.push(o);
      freeStates.push({ wait, held: false });
    } else missed.push({ backup: o.backup.name, reason: windowFailedReason(wait), tenantReason: windowFailedTenantReason(wait) });
  }
  return {
    order: free.concat(held),
    states: freeStates.concat(heldStates),
    missed: missed.sort((a, b) => (a.backup < b.backup ? -1 : 1)),
    validUntil,
  };
}

/** Whether `b` may not start at `now` for its window: held, or failed for missing it. */
export function heldByWindow(b: BackupInfo, policy: Policy, now: number, times: Timestamps, zones?: Zones): boolean {
  const s = windowStateOf(b, policy, now, times, zones);
  return s !== undefined && (!("held" in s) || s.held);
}

/** How one backup stands with the windows at `now` (undefined: no window governs it, or its window is open). */
export function windowStateOf(
  b: BackupInfo,
  policy: Policy,
  now: number,
  times: Timestamps,
  zones?: Zones,
): WindowState | MissedWindow | undefined {
  if (!policy.windows) return undefined;
  const w = applyWindows(
    [{ backup: b, priority: 0, effectivePriority: 0, created: times.parse(b.creationTimestamp) }],
    policy.windows,
    now,
    times,
    zones,
  );
  return w.missed[0] ?? w.states[0];
}

// --- selectors ---

/** The first window whose selector matches `b` (windows are tried in the policy's order). */
export function windowOf(b: BackupInfo, windows: readonly StartWindow[]): number | undefined {
  for (let i = 0; i < windows.length; i++) if (selects((windows[i] as StartWindow).selector, b)) return i;
  return undefined;
}

/** Every field given must match; within a field one entry suffices. */
function selects(s: StartWindow["selector"], b: BackupInfo): boolean {
  if (s.namespaces && !includedNamespaces(b).some((ns) => s.namespaces!.some((p) => globMatcher(p)(ns)))) return false;
  if (s.matchLabels && !Object.entries(s.matchLabels).every(([k, v]) => b.labels[k] === v)) return false;
  if (s.schedules) {
    const schedule = b.labels[KEYS.scheduleName];
    if (schedule === undefined || !s.schedules.includes(schedule)) return false;
  }
  return true;
}

/** spec.includedNamespaces as written; a backup that names none includes `*` (every namespace). */
function includedNamespaces(b: BackupInfo): string[] {
  const spec = b.spec as { includedNamespaces?: unknown } | null | undefined;
  const listed = Array.isArray(spec?.includedNamespaces) ? spec.includedNamespaces.filter((x): x is string => typeof x === "string") : [];
  return listed.length > 0 ? listed : ["*"];
}

// --- the clock of one window ---

export interface WindowClock {
  readonly open: boolean;
  /** The next instant after `now` at which it opens or closes (Infinity: never within a week and a day). */
  readonly nextChange: number;
  readonly wait: WindowWait;
}

/** Whether window i is open at `now`, when that next changes, and what a backup it holds waits for. */
export function windowClock(w: StartWindow, i: number, now: number, zones = new Zones()): WindowClock {
  const zone = w.timeZone;
  const isOpen = openAt(w);
  const open = isOpen(wallClock(zones, zone, now));
  const nextChange = nextChangeOf(zones, w, isOpen, now);
  // The span named in the reason: from its next opening to the closing after, in local time.
  const opens = open ? Infinity : nextChange;
  const closes = opens < Infinity ? nextChangeOf(zones, w, isOpen, opens) : Infinity;
  const span =
    opens < Infinity
      ? `${hhmm(wallClock(zones, zone, opens))}-${closes < Infinity ? hhmm(wallClock(zones, zone, closes)) : "on"}`
      : "never";
  return {
    open,
    nextChange,
    wait: {
      window: w.name ?? `windows[${i}]`,
      span,
      zone,
      opens,
      opensLocal: opens < Infinity ? localText(wallClock(zones, zone, opens)) : "",
    },
  };
}

function openAt(w: StartWindow): (c: WallClock) => boolean {
  if (w.allow) {
    const allow = w.allow;
    return (c) => allow.some((s) => inSpan(s, c));
  }
  const blackout = w.blackout ?? [];
  return (c) => !blackout.some((s) => inSpan(s, c));
}

/** Whether wall-clock time `c` lies in span `s`; a span crossing midnight belongs to the day it starts. */
function inSpan(s: Span, c: WallClock): boolean {
  const on = (day: number) => s.days === undefined || s.days.includes(DAYS[(day + 7) % 7] as Day);
  if (s.start < s.end) return c.minute >= s.start && c.minute < s.end && on(c.day);
  return (c.minute >= s.start && on(c.day)) || (c.minute < s.end && on(c.day - 1));
}

const WEEK_AND_DAY = 8 * 86_400_000;

/**
 * The next instant after `from` at which the window opens or closes. Its state moves only when
 * the wall clock passes a span's start or end, or jumps (DST): step from one such instant to
 * the next, at most a week and a day ahead.
 */
function nextChangeOf(zones: Zones, w: StartWindow, isOpen: (c: WallClock) => boolean, from: number): number {
  const zone = w.timeZone;
  const marks = [...new Set((w.allow ?? w.blackout ?? []).flatMap((s) => [s.start, s.end]))].sort((a, b) => a - b);
  const was = isOpen(wallClock(zones, zone, from));
  let t = from;
  while (t - from <= WEEK_AND_DAY) {
    const c = wallClock(zones, zone, t);
    const next = marks.find((m) => m > c.minute) ?? (marks[0] as number) + 1440;
    let step = t - c.intoMinute + (next - c.minute) * 60_000;
    if (wallClock(zones, zone, step).offset !== c.offset) step = offsetChange(zones, zone, t, step, c.offset);
    t = step;
    if (isOpen(wallClock(zones, zone, t)) !== was) return t;
  }
  return Infinity;
}

/** The first second in (lo, hi] at which the zone's offset is no longer `offset` (it is not at lo, and is at hi). */
function offsetChange(zones: Zones, zone: string, lo: number, hi: number, offset: number): number {
  let [a, b] = [lo, hi];
  while (b - a > 1000) {
    const mid = a + Math.floor((b - a) / 2000) * 1000;
    if (wallClock(zones, zone, mid).offset === offset) a = mid;
    else b = mid;
  }
  return b;
}

// --- wall-clock time through Intl ---

interface WallClock {
  /** 0 = Monday. */
  readonly day: number;
  /** Minutes since local midnight. */
  readonly minute: number;
  /** Milliseconds into the current minute. */
  readonly intoMinute: number;
  /** Local time minus UTC, in ms. */
  readonly offset: number;
  readonly date: string;
}

/** Intl formatters by zone, made once per plan (a formatter costs far more than a formatting). */
export class Zones {
  readonly #formats = new Map<string, Intl.DateTimeFormat>();

  format(zone: string): Intl.DateTimeFormat {
    let f = this.#formats.get(zone);
    if (!f) {
      f = new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        hourCycle: "h23",
        weekday: "short",
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
      });
      this.#formats.set(zone, f);
    }
    return f;
  }
}

function wallClock(zones: Zones, zone: string, t: number): WallClock {
  const f = zones.format(zone);
  const p: Record<string, string> = {};
  for (const part of f.formatToParts(t)) p[part.type] = part.value;
  const [y, mo, d, h, mi, s] = [p.year, p.month, p.day, p.hour, p.minute, p.second].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = ((t % 1000) + 1000) % 1000;
  return {
    day: DAYS.indexOf(p.weekday as Day),
    minute: h * 60 + mi,
    intoMinute: s * 1000 + ms,
    offset: Date.UTC(y, mo - 1, d, h, mi, s) - (t - ms),
    date: `${p.weekday} ${p.year}-${p.month}-${p.day}`,
  };
}

const two = (n: number) => String(n).padStart(2, "0");
const hhmm = (c: WallClock) => `${two(Math.floor(c.minute / 60))}:${two(c.minute % 60)}`;
const localText = (c: WallClock) => `${c.date} ${hhmm(c)}`;

/** When a window one of `queued` follows next opens or closes, or a held one's max wait ends (Infinity without windows). */
export function nextWindowChange(queued: readonly BackupInfo[], policy: Policy, now: number, times: Timestamps): number {
  if (!policy.windows) return Infinity;
  const ordered = queued.map((backup): Ordered => ({
    backup,
    priority: 0,
    effectivePriority: 0,
    created: times.parse(backup.creationTimestamp),
  }));
  return applyWindows(ordered, policy.windows, now, times).validUntil;
}
