import { loadSnapshot, trim, type LoadedSnapshot } from "../../../src/core/velero/objects.js";

/**
 * A cluster view and its backups, from the objects test/support/builders.ts makes. Backups are
 * read as the webhook reads them (`trim`), so a test can hold one with a spec the API server
 * would refuse; the snapshot reader refuses those.
 */
export function cluster(...items: (object | object[])[]): LoadedSnapshot {
  const all = items.flat();
  const isBackup = (o: object) => (o as { kind?: unknown }).kind === "Backup";
  const result = loadSnapshot({ apiVersion: "v1", kind: "List", items: all.filter((o) => !isBackup(o)) });
  if (!result.ok) throw new Error(result.error);
  const backups = all.filter(isBackup).map((raw) => {
    const b = trim("Backup", raw);
    if (!b.ok) throw b.error;
    return b.value;
  });
  return { ...result.snapshot, backups };
}
