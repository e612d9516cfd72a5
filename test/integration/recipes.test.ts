/**
 * The README's plain-Velero recipe, run as written: the Deployment `velero install` (the real
 * v1.18.3 binary) makes is stored in a real API server, then the README's own patch commands
 * switch Velero's queue off and, for the roll back, on again. Nothing runs the pods (there is no
 * kubelet); what is checked is that the commands do what the README says to the Deployment.
 */
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { toolPath } from "../support/tools.js";

const run = promisify(execFile);

/** The shell commands of the README section's ```sh blocks, continuation lines joined. */
function sectionCommands(heading: string): string[] {
  const readme = readFileSync("README.md", "utf8");
  const start = readme.indexOf(`\n## ${heading}\n`);
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => (m[1] as string).replace(/\\\n\s*/g, "").split("\n")).filter((l) => l.trim() !== "");
}

describe("README recipe: plain Velero 1.18", () => {
  let cp: ControlPlane;
  const commands = sectionCommands("Recipe: plain Velero 1.18");
  const pick = (prefix: string) => {
    const found = commands.filter((c) => c.startsWith(prefix));
    expect(found.length, `a README command starting with ${prefix}`).toBeGreaterThan(0);
    return found;
  };
  // kubectl is the one tools/build.sh builds from Kubernetes' module, first on PATH; jq is Debian's.
  const PATH = `${dirname(toolPath("kubectl"))}:${process.env.PATH ?? "/usr/bin:/bin"}`;
  const sh = async (script: string) =>
    (await run("bash", ["-euo", "pipefail", "-c", script], { env: { ...process.env, PATH, KUBECONFIG: cp.kubeconfigPath } })).stdout;
  const veleroArgs = async () => JSON.parse(await sh("kubectl -n velero get deploy velero -o jsonpath='{.spec.template.spec.containers[0].args}'")) as string[];

  beforeAll(async () => {
    cp = await startControlPlane({ name: "recipes" });
    // What `velero install ... --concurrent-backups 4` creates, from the real binary.
    const { stdout } = await run(toolPath("velero"), [
      "install",
      "--dry-run",
      "-o",
      "yaml",
      "--kubeconfig",
      cp.kubeconfigPath,
      "--provider",
      "aws",
      "--plugins",
      "velero/velero-plugin-for-aws:v1.14.3",
      "--bucket",
      "backups",
      "--no-secret",
      "--use-volume-snapshots=false",
      "--backup-location-config",
      "region=us-east-1",
      "--concurrent-backups",
      "4",
    ]);
    const file = join(cp.dir, "velero-install.yaml");
    writeFileSync(file, stdout);
    await sh(`kubectl apply -f ${file} >/dev/null`);
  }, 300_000);
  afterAll(async () => {
    await cp?.stop();
  });

  it("velero install --concurrent-backups sets the server arg; it has no --disable-controllers of its own", async () => {
    const args = await veleroArgs();
    expect(args[0]).toBe("server");
    expect(args).toContain("--concurrent-backups=4");
    expect(args.some((a) => a.startsWith("--disable-controllers"))).toBe(false);
  });

  it("the install patch adds --disable-controllers=backup-queue, and the check command shows both flags", async () => {
    for (const cmd of pick('kubectl -n velero patch deployment velero --type json -p \'[{"op":"add"')) await sh(cmd);
    expect(await veleroArgs()).toEqual(expect.arrayContaining(["--concurrent-backups=4", "--disable-controllers=backup-queue"]));
    const [check] = pick("kubectl -n velero get deploy velero -o jsonpath=");
    const shown = await sh(check as string);
    expect(shown).toMatch(/--disable-controllers=backup-queue/);
    expect(shown).toMatch(/--concurrent-backups=4/);
  });

  it("the roll back removes exactly that argument and keeps the others", async () => {
    const before = await veleroArgs();
    const [find] = pick("i=$(");
    const [remove] = commands.filter((c) => c.includes('\\"op\\":\\"remove\\"'));
    expect(remove).toBeDefined();
    await sh(`${find}\n${remove}`);
    expect(await veleroArgs()).toEqual(before.filter((a) => a !== "--disable-controllers=backup-queue"));
  });
});
