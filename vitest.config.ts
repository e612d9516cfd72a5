import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      // Some unit suites start real processes (the CLI) and HTTPS servers; on 2 busy cores they can take seconds.
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 20_000 } },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // Each suite starts its own control plane; two cores cannot run many at once.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
