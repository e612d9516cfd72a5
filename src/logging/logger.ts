import { pino, type Logger } from "pino";

export type { Logger };

/** JSON logs on stdout; every decision line carries `backup`. */
export function createLogger(level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { app: "backup-gate" }, timestamp: pino.stdTimeFunctions.isoTime });
}
