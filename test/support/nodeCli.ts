/**
 * The test node as a command (for the demo, or a person poking at it):
 *
 *   npx tsx test/support/nodeCli.ts [--csi] [--velero] [--concurrent-backups N] [--disable-queue] [--probe-sleep 2s]
 *
 * Starts the node (with CSI, and Velero on it with --velero; EnableCSI with --csi), prints one
 * JSON line {"kubeconfig","host","dir","images","csi","velero"}, and runs until SIGINT or SIGTERM, then tears
 * everything down (as after a suite). Needs root and `bash tools/build.sh`.
 */
import { parseArgs } from "node:util";
import { startNode, startNodeCsi, startNodeVelero, type NodeCsi, type NodeVelero } from "./node.js";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      velero: { type: "boolean", default: false },
      csi: { type: "boolean", default: false },
      "concurrent-backups": { type: "string", default: "1" },
      "disable-queue": { type: "boolean", default: false },
      "probe-sleep": { type: "string", default: "0s" },
    },
  });
  const concurrentBackups = Number(values["concurrent-backups"]);
  if (!Number.isInteger(concurrentBackups) || concurrentBackups < 1) {
    throw new Error(`--concurrent-backups must be a positive integer, not ${JSON.stringify(values["concurrent-backups"])}`);
  }
  const node = await startNode();
  let velero: NodeVelero | undefined;
  let csi: NodeCsi | undefined;
  const stop = async () => {
    await velero?.stop();
    await node.stop();
  };
  try {
    if (values.csi) csi = await startNodeCsi(node);
    if (values.velero) {
      velero = await startNodeVelero(node, {
        concurrentBackups,
        disableQueue: values["disable-queue"],
        probeSleep: values["probe-sleep"],
        features: csi ? ["EnableCSI"] : [],
      });
    }
  } catch (e) {
    await stop();
    throw e;
  }
  process.stdout.write(
    `${JSON.stringify({
      kubeconfig: node.kubeconfigPath,
      host: node.host,
      dir: node.dir,
      images: node.images,
      csi: csi ?? null,
      velero: velero ? { namespace: velero.namespace, probeDir: velero.probeDir, s3Url: velero.s3Url } : null,
    })}\n`,
  );
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await stop();
}

main().catch((e: unknown) => {
  process.stderr.write(`nodeCli: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
