import { z } from "zod";

// The `windows` section of the policy (docs/rules.md, "Windows"): when the backups a selector
// picks may start. Checked here so that a bad section is refused naming its field.

export const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;
export type Day = (typeof DAYS)[number];

const clock = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time of day "HH:MM" from 00:00 to 23:59')
  .transform((s) => Number(s.slice(0, 2)) * 60 + Number(s.slice(3)));

/** A span of wall-clock time, every day or on the days named (the day it starts on); end before start crosses midnight. */
const spanSchema = z
  .strictObject({
    start: clock,
    end: clock,
    days: z.array(z.enum(DAYS)).min(1).optional(),
  })
  .refine((s) => s.start !== s.end, {
    message: "start and end are equal: a span needs a length (leave the section out to allow every time)",
    path: ["end"],
  });

/** Whether the runtime's Intl knows `zone` (an IANA name such as Europe/Berlin, or UTC). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const selectorSchema = z.strictObject({
  /** Globs matched against each entry of spec.includedNamespaces (none: `*`). */
  namespaces: z
    .array(
      z
        .string()
        .min(1)
        .max(63)
        .regex(/^[a-z0-9*?[\]-]+$/, { message: "not a namespace name or glob (lowercase letters, digits, -, and * ? [ ])" }),
    )
    .min(1)
    .optional(),
  /** Backup labels that must all be present with these values. */
  matchLabels: z.record(z.string().min(1), z.string()).optional(),
  /** Schedule names (velero.io/schedule-name); a backup not made by a Schedule matches none. */
  schedules: z.array(z.string().min(1)).min(1).optional(),
});

export const windowSchema = z
  .strictObject({
    /** Shown in reasons; defaults to windows[i]. */
    name: z.string().min(1).max(63).optional(),
    /** Which backups the window governs; every field given must match (an empty selector matches all). */
    selector: selectorSchema.prefault({}),
    timeZone: z
      .string()
      .min(1)
      .default("UTC")
      .refine(isTimeZone, { message: "not a time zone this runtime knows (an IANA name such as Europe/Berlin)" }),
    /** Spans in which a start is allowed (exclusive with blackout). */
    allow: z.array(spanSchema).min(1).optional(),
    /** Spans in which no start is allowed (exclusive with allow). */
    blackout: z.array(spanSchema).min(1).optional(),
    /** After waiting this long outside its window (from creation), a backup is started anyway or failed. */
    maxWaitSeconds: z.number().int().min(1).optional(),
    onMaxWait: z.enum(["Start", "Fail"]).default("Start"),
  })
  .superRefine((w, ctx) => {
    if ((w.allow === undefined) === (w.blackout === undefined))
      ctx.addIssue({ code: "custom", message: "give exactly one of allow and blackout", path: [w.allow ? "blackout" : "allow"] });
  });

export type StartWindow = z.output<typeof windowSchema>;
export type Span = StartWindow extends { allow?: (infer S)[] } ? S : never;
