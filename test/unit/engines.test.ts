import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

// package.json's engines must say what the dependencies require, and the image must run a Node
// inside that range on a line still supported. What the tests run on is said in the README.

// npm's own range semantics (semver is in the tree through the dev tools; it has no types here).
const semver = createRequire(import.meta.url)("semver") as {
  subset(sub: string, sup: string): boolean;
  intersects(a: string, b: string): boolean;
  validRange(range: string): string | null;
};
const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { engines: { node: string } };
const lock = JSON.parse(readFileSync("package-lock.json", "utf8")) as { packages: Record<string, { dev?: boolean; engines?: { node?: string } }> };
/** Node.js release schedule (nodejs.org/en/about/previous-releases): end of life per LTS line. */
const END_OF_LIFE: Record<number, string> = { 20: "2026-04-30", 22: "2027-04-30", 24: "2028-04-30" };

/** Production packages whose declared Node range does not hold every version `range` admits. */
function narrowerThan(range: string): string[] {
  return Object.entries(lock.packages)
    .filter(([path, p]) => path !== "" && !p.dev && p.engines?.node && semver.validRange(p.engines.node))
    .filter(([, p]) => !semver.subset(range, p.engines!.node!))
    .map(([path, p]) => `${path.replace(/^node_modules\//, "")} (${p.engines!.node})`);
}

describe("Node.js versions", () => {
  it("engines admits no Node that a production dependency refuses", () => {
    expect(narrowerThan(pkg.engines.node)).toEqual([]);
    // Positive control: the former ">=20" admitted versions cookie (via fastify) refuses.
    expect(narrowerThan(">=20")).toContain("cookie (>=22)");
  });

  it("the image's Node is inside engines, on an LTS line not past its end of life", () => {
    const majors = [...readFileSync("Dockerfile", "utf8").matchAll(/^FROM node:(\d+)-/gm)].map((m) => Number(m[1]));
    expect(majors.length).toBe(2);
    for (const major of majors) {
      expect(semver.intersects(`${major}.x`, pkg.engines.node), `node ${major} within ${pkg.engines.node}`).toBe(true);
      expect(END_OF_LIFE[major], `node ${major} is an LTS line`).toBeDefined();
      expect(Date.parse(END_OF_LIFE[major]!)).toBeGreaterThan(Date.now());
    }
  });
});
