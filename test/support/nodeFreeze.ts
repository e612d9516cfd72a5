/**
 * A "freeze" workload for the test node: a busybox pod whose Velero pre-backup exec hook takes
 * a freeze of its data volume and whose post-backup hook releases it, recording both.
 *
 * - The freeze is a lock file created with O_EXCL (`set -o noclobber`): a second freeze while
 *   one is held fails, is recorded as `busy`, and fails its hook (on-error Fail, so that
 *   backup's post hook does not run and cannot release the first backup's freeze).
 * - Records go to a hostPath directory of the suite (one line per hook run, appended), so the
 *   suite reads them without exec: `freeze <uptime> <epoch s> held|busy ...`, `thaw ...`.
 *   Times are the kernel's uptime (10 ms resolution; busybox's date has no sub-second
 *   format), converted to wall-clock milliseconds by the host, which shares the clock.
 * - Velero runs the post hook only after the pod's volume backups finish, so a freeze
 *   spans the pod's file-system backup.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const FREEZE_SH = `#!/bin/sh
# freeze.sh freeze|thaw: Velero's pre/post-backup hooks (see test/support/nodeFreeze.ts).
rec=/records/freeze.log
lock=/data/.freeze.lock
t="$(cut -d' ' -f1 /proc/uptime) $(date +%s)"
case "$1" in
freeze)
  if ( set -o noclobber; echo "$t" > "$lock" ) 2>/dev/null; then
    echo "freeze $t held" >> "$rec"
    # A real freeze takes a while (flush, checkpoint): HOLD seconds, written by freezePod.
    sleep "$(cat /tmp/freeze-hold 2>/dev/null || echo 0)"; exit 0
  fi
  echo "freeze $t busy since $(cat "$lock")" >> "$rec"
  echo "freeze: the volume is already frozen (since uptime $(cat "$lock"))" >&2; exit 1;;
thaw)
  if held="$(cat "$lock" 2>/dev/null)" && rm -f "$lock"; then
    echo "thaw $t released $held" >> "$rec"; exit 0
  fi
  echo "thaw $t nolock" >> "$rec"; exit 1;;
esac
echo "usage: freeze.sh freeze|thaw" >&2; exit 2
`;

export interface FreezePodOptions {
  image: string;
  /** Host directory for this pod's records (hostPath, created if missing). */
  recordsDir: string;
  /** Size of the random file written to the data volume before the pod is ready (MiB). */
  dataMiB?: number;
  /** Seconds the pre-backup hook spends after taking the freeze (a flush or checkpoint). Default 0. */
  holdSeconds?: number;
}

/** The pod: container `app`, volume `data` (emptyDir, backed up by file system), hooks on. */
export function freezePod(name: string, o: FreezePodOptions): V1Pod {
  const start = [
    `cat > /tmp/freeze.sh <<'EOF'\n${FREEZE_SH}EOF`,
    `echo ${o.holdSeconds ?? 0} > /tmp/freeze-hold`,
    `dd if=/dev/urandom of=/data/blob bs=1048576 count=${o.dataMiB ?? 8} 2>/dev/null`,
    "touch /tmp/ready",
    // PID 1 ignores SIGTERM unless it traps it: exit at once when the pod is deleted.
    "trap 'exit 0' TERM",
    "while :; do sleep 1 & wait $!; done",
  ].join("\n");
  const hook = (arg: string) => JSON.stringify(["/bin/sh", "/tmp/freeze.sh", arg]);
  return {
    metadata: {
      name,
      labels: { app: name },
      annotations: {
        "pre.hook.backup.velero.io/container": "app",
        "pre.hook.backup.velero.io/command": hook("freeze"),
        "pre.hook.backup.velero.io/on-error": "Fail",
        "pre.hook.backup.velero.io/timeout": "30s",
        "post.hook.backup.velero.io/container": "app",
        "post.hook.backup.velero.io/command": hook("thaw"),
        "post.hook.backup.velero.io/timeout": "30s",
        "backup.velero.io/backup-volumes": "data",
      },
    },
    spec: {
      terminationGracePeriodSeconds: 2,
      containers: [
        {
          name: "app",
          image: o.image,
          imagePullPolicy: "Never",
          command: ["/bin/sh", "-c", start],
          readinessProbe: { exec: { command: ["test", "-f", "/tmp/ready"] }, periodSeconds: 1 },
          volumeMounts: [
            { name: "data", mountPath: "/data" },
            { name: "records", mountPath: "/records" },
          ],
        },
      ],
      volumes: [
        { name: "data", emptyDir: {} },
        { name: "records", hostPath: { path: o.recordsDir, type: "DirectoryOrCreate" } },
      ],
    },
  };
}

export interface FreezeRecord {
  kind: "freeze" | "thaw";
  /** held/busy (freeze) or released/nolock (thaw). */
  outcome: "held" | "busy" | "released" | "nolock";
  /** Wall-clock time of the hook run, ms since the epoch (from the kernel's uptime). */
  atMs: number;
  line: string;
}

function hostUptimeOffsetMs(): number {
  const up = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
  return Date.now() - up * 1000;
}

/** Parses a pod's freeze.log; a malformed line throws naming it. */
export function readFreezeRecords(recordsDir: string): FreezeRecord[] {
  let text: string;
  try {
    text = readFileSync(join(recordsDir, "freeze.log"), "utf8");
  } catch {
    return [];
  }
  const offset = hostUptimeOffsetMs();
  return text
    .split("\n")
    .filter((l) => l.trim())
    .map((line) => {
      const m = /^(freeze|thaw) (\d+(?:\.\d+)?) \d+ (held|busy|released|nolock)\b/.exec(line);
      if (!m) throw new Error(`malformed freeze record: ${JSON.stringify(line)}`);
      return { kind: m[1] as FreezeRecord["kind"], outcome: m[3] as FreezeRecord["outcome"], atMs: Math.round(Number(m[2]) * 1000 + offset), line };
    });
}

export interface FreezeWindow {
  fromMs: number;
  /** Undefined while the freeze is still held. */
  toMs?: number;
}

/** The held freezes, each from its `held` record to the `released` record that follows it. */
export function freezeWindows(records: readonly FreezeRecord[]): FreezeWindow[] {
  const out: FreezeWindow[] = [];
  let open: FreezeWindow | undefined;
  for (const r of records) {
    if (r.kind === "freeze" && r.outcome === "held") {
      open = { fromMs: r.atMs };
      out.push(open);
    } else if (r.kind === "thaw" && r.outcome === "released" && open) {
      open.toMs = r.atMs;
      open = undefined;
    }
  }
  return out;
}

/** Freeze attempts that found the volume already frozen: two backups froze one pod at once. */
export function overlappingFreezes(records: readonly FreezeRecord[]): FreezeRecord[] {
  return records.filter((r) => r.kind === "freeze" && r.outcome === "busy");
}
