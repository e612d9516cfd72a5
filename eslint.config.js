import js from "@eslint/js";
import tseslint from "typescript-eslint";

// The decision core must stay pure: no I/O, no clock, no Kubernetes or HTTP clients.
const impureModules = [
  "fs",
  "fs/promises",
  "node:fs",
  "node:fs/promises",
  "net",
  "node:net",
  "http",
  "node:http",
  "https",
  "node:https",
  "child_process",
  "node:child_process",
  "os",
  "node:os",
  "@kubernetes/client-node",
  "fastify",
  "pino",
  "prom-client",
  "node-forge",
];

// Messages and URLs read better whole than wrapped.
const LONG_LITERALS_ALLOWED = { ignoreStrings: true, ignoreTemplateLiterals: true, ignoreUrls: true, ignoreRegExpLiterals: true };

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "tools/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // Limits the code meets today, to be lowered as it improves (src/core has lower ones below,
      // four files outside src/ a higher complexity one).
      complexity: ["error", 20],
      "max-len": ["error", { code: 160, ...LONG_LITERALS_ALLOWED }],
      // Type-checked rules, less two families for now: JSON read in tests is `any` (307 findings
      // of no-unsafe-*), and async functions without await keep interfaces uniform.
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/require-await": "off",
      // A caught error or an abort reason is passed on as it came.
      "@typescript-eslint/prefer-promise-reject-errors": ["error", { allowThrowingAny: true, allowThrowingUnknown: true }],
    },
  },
  // Not yet at the limit: cleanUpNodeLeftovers 29, withApiServer 24, the demo's main 23, pvbOverlaps 22.
  { files: ["test/support/nodeHost.ts", "bench/rss.bench.ts", "bench/sidebyside.node.ts", "scripts/demo.ts"], rules: { complexity: ["error", 29] } },
  { files: ["**/*.js", "**/*.mjs"], ...tseslint.configs.disableTypeChecked },
  {
    files: ["src/core/**/*.ts"],
    rules: {
      complexity: ["error", 15],
      "max-len": ["error", { code: 140, ...LONG_LITERALS_ALLOWED }],
      "no-restricted-properties": [
        "error",
        { object: "Date", property: "now", message: "src/core takes `now` as an argument" },
        { object: "performance", property: "now", message: "src/core takes `now` as an argument" },
        { object: "Math", property: "random", message: "src/core is deterministic" },
      ],
      "no-restricted-syntax": ["error", { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: "src/core takes `now` as an argument" }],
      "no-restricted-globals": ["error", "process", "fetch", "setTimeout", "setInterval"],
    },
  },
  // A file in src/core may import only src/core: from a file d folders deep, d + 1 steps up leave it.
  ...[0, 1, 2].map((depth) => ({
    files: [`src/core/${"*/".repeat(depth)}*.ts`],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          paths: impureModules.map((name) => ({ name, message: "src/core is pure: no I/O imports" })),
          patterns: [{ regex: `^(\\.\\./){${depth + 1}}`, message: "src/core may import only from src/core" }],
        },
      ],
    },
  })),
);
