import { defineConfig } from "vitest/config";

// The pure tables and properties (no process, no server, no network): the inner loop.
const CORE = [
  "test/unit/{backupIndex,budgets,fidelity,layers,moduleState,overlap,plan,properties,purity,quantity,restores,scope,shapes,sim,tenants,volumePolicy,windows,writes}.test.ts",
];

export default defineConfig({
  test: {
    projects: [
      // Property tests run hundreds of plans; under a loaded machine one can take several seconds.
      // Table titles show each row's full name ($name); vitest would cut it at 40 characters.
      { test: { name: "core", include: CORE, testTimeout: 20_000, chaiConfig: { truncateThreshold: 0 } } },
      // Some unit suites start real processes (the CLI) and HTTPS servers; on 2 busy cores they can take seconds.
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"], exclude: CORE, testTimeout: 20_000, chaiConfig: { truncateThreshold: 0 } } },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // Each suite starts its own control plane; two cores cannot run many at once.
          fileParallelism: false,
          chaiConfig: { truncateThreshold: 0 },
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
