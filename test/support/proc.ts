/**
 * Child processes started by the harness.
 *
 * - Each child runs in its own process group (detached), so stop() reaches the
 *   whole tree (Velero's plugin processes included).
 * - stdout and stderr go to a log file; nothing is kept only in memory.
 * - A child that exits when nobody asked it to is recorded; assertChildrenAlive()
 *   (called by every waitFor poll) then throws with its last log lines, so a
 *   suite fails fast instead of hanging.
 * - On exit of the test process, every child's group is SIGKILLed. Children that
 *   can watch their stdin (the launcher and the S3 server, or anything started
 *   through tools/run-guarded.sh) also stop when the test process is killed
 *   outright, because their stdin pipe then closes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, createWriteStream, fstatSync, mkdirSync, mkdtempSync, openSync, readSync, type WriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SpawnOptions {
  /** Short name used in messages and as the log file name. */
  name: string;
  /** Directory for <name>.log. */
  logDir: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** More log files (written by the child itself) to quote when it dies. */
  extraLogs?: string[];
  /** Called with each stdout line (stdout is also written to the log). */
  onStdoutLine?: (line: string) => void;
}

const live = new Set<ManagedProcess>();
const deaths: Error[] = [];

export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  readonly extraLogs: string[];
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stopping = false;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private log: WriteStream;

  constructor(cmd: string, args: string[], opts: SpawnOptions) {
    this.name = opts.name;
    mkdirSync(opts.logDir, { recursive: true });
    this.logFile = join(opts.logDir, `${opts.name}.log`);
    this.extraLogs = opts.extraLogs ?? [];
    this.log = createWriteStream(this.logFile, { flags: "a" });
    this.log.write(`# ${new Date().toISOString()} ${cmd} ${args.join(" ")}\n`);
    this.child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    });
    // Never let a write to a dead child's stdin crash the test process.
    this.child.stdin?.on("error", () => {});
    let buf = "";
    this.child.stdout?.on("data", (d: Buffer) => {
      this.log.write(d);
      if (!opts.onStdoutLine) return;
      buf += d.toString("utf8");
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        opts.onStdoutLine(line);
      }
    });
    this.child.stderr?.on("data", (d: Buffer) => this.log.write(d));
    this.exited = new Promise((resolve) => {
      this.child.on("error", (err) => {
        this.log.write(`# spawn error: ${err.message}\n`);
      });
      this.child.on("close", (code, signal) => {
        this.exitInfo = { code, signal };
        // Whatever the child left in its group (e.g. Velero's plugin processes) goes too.
        killGroup(this.child.pid, "SIGKILL");
        live.delete(this);
        if (!this.stopping) {
          deaths.push(new Error(`${this.name} (pid ${this.child.pid}) exited unexpectedly ` + `(code ${code}, signal ${signal}).\n${this.tail(40)}`));
        }
        this.log.end();
        resolve({ code, signal });
      });
    });
    live.add(this);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** The last `n` lines of the child's log and of its extra logs. */
  tail(n = 40): string {
    const parts: string[] = [];
    for (const f of [this.logFile, ...this.extraLogs]) {
      parts.push(`--- last ${n} lines of ${f} ---\n${tailFile(f, n)}`);
    }
    return parts.join("\n");
  }

  /** SIGKILL the process group at once, as a crash would (chaos and failover tests). */
  async kill(): Promise<void> {
    this.stopping = true;
    killGroup(this.child.pid, "SIGKILL");
    await this.exited;
  }

  /** SIGTERM the process group, then SIGKILL it after `timeoutMs`. Idempotent. */
  async stop(timeoutMs = 20_000): Promise<void> {
    this.stopping = true;
    this.child.stdin?.end();
    if (this.exitInfo === undefined) {
      killGroup(this.child.pid, "SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        this.exited.then(() => false),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(true), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        this.log.write(`# did not stop within ${timeoutMs} ms; SIGKILL\n`);
        killGroup(this.child.pid, "SIGKILL");
        await this.exited;
      }
    }
    // Leftovers in the group (e.g. plugin processes) go too.
    killGroup(this.child.pid, "SIGKILL");
  }
}

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: already gone.
  }
}

export function spawnManaged(cmd: string, args: string[], opts: SpawnOptions): ManagedProcess {
  return new ManagedProcess(cmd, args, opts);
}

/** Throws if any harness child died unexpectedly (with its last log lines). */
export function assertChildrenAlive(): void {
  const first = deaths[0];
  if (first) throw first;
}

/** Forget recorded deaths (after a suite has reported them). */
export function clearDeaths(): void {
  deaths.length = 0;
}

/** Last `n` lines of a file (reads at most its last 256 KiB). */
export function tailFile(path: string, n: number): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return "(no such file)";
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, 256 * 1024);
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, size - len);
    const lines = b.toString("utf8").split("\n");
    if (lines.at(-1) === "") lines.pop();
    return lines.slice(-n).join("\n");
  } finally {
    closeSync(fd);
  }
}

/** A fresh per-suite directory for logs, kubeconfig, Velero's HOME/TMPDIR, probe records. */
export function makeSuiteDir(name: string): string {
  const base = process.env.BACKUP_GATE_TEST_TMP ?? tmpdir();
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, `backup-gate-it-${name.replace(/[^A-Za-z0-9-]/g, "-")}-`));
}

function killAllSync(): void {
  for (const p of live) killGroup(p.pid, "SIGKILL");
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  // Runs on normal exit and process.exit(); a test process killed by a signal
  // is covered by the stdin-EOF watch of each child instead.
  process.on("exit", killAllSync);
}
hookExit();
