// Makes a function hot on objects that live only while it runs (as a review's parsed body
// does), then goes quiet in one of two ways and prints whether the function is still optimized:
//   reducer      grows the heap and collects it (as a burst does), then sits idle until the
//                first full collection or 110 s: V8's memory reducer tries 8 s after such a
//                collection, again every 8 s while the process does not look quiet, and
//                collects anyway (its watchdog) 100 s after the last collection
//   collections  20 full collections, as watch events bring about between bursts
// With "serve" as second argument it first sets what `backup-gate serve` sets. Run by
// quietCode.test.ts with --allow-natives-syntax --expose-gc.
import { PerformanceObserver, constants, type PerformanceEntry } from "node:perf_hooks";
import { runInThisContext } from "node:vm";
import { keepOptimizedCode } from "../../../src/cli/v8Flags.js";

// V8's intrinsic, which TypeScript cannot spell: compiled by V8 itself under --allow-natives-syntax.
const optimizationStatus = runInThisContext("(f) => %GetOptimizationStatus(f)") as (f: unknown) => number;
const OPTIMIZED = 1 << 4;
const collect = (globalThis as unknown as { gc: (options?: { type: "minor" | "major" }) => void }).gc;

interface Body {
  request: { uid: string; object: { spec: { includedNamespaces: string[] } } };
}

function hot(text: string): number {
  const body = JSON.parse(text) as Body;
  return body.request.uid.length + body.request.object.spec.includedNamespaces.length;
}

function warm(): number {
  let sum = 0;
  for (let i = 0; i < 20_000; i++) sum += hot(`{"request":{"uid":"u-${i}","object":{"spec":{"includedNamespaces":["ns-${i % 7}"]}}}}`);
  return sum;
}

async function idleAfterGrowth(): Promise<number> {
  let grown: object[] | undefined = [];
  for (let i = 0; i < 150_000; i++) grown.push({ i, name: `object-${i}` });
  grown = undefined;
  collect();
  // V8 judges the allocation rate over its last ten collections' intervals: ten scavenges with
  // nothing allocated between them make it see a quiet process on the reducer's first timer.
  for (let i = 0; i < 10; i++) collect({ type: "minor" });
  let major = 0;
  let seen = () => {};
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
    if (major > 0) seen();
  });
  await new Promise((r) => setTimeout(r, 10));
  observer.observe({ entryTypes: ["gc"] });
  // One timer, no polling: a process woken every few ms does not look quiet to the reducer. On a
  // loaded machine its tries can find the process not quiet (seen in CI, even at 30 s); its
  // watchdog collects 100 s after the last collection, hence 110 s.
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    seen = resolve;
    timer = setTimeout(resolve, 110_000);
  });
  clearTimeout(timer);
  observer.disconnect();
  return major;
}

function collections(): number {
  for (let i = 0; i < 20; i++) collect();
  return 20;
}

async function main(): Promise<void> {
  const [quiet, as] = process.argv.slice(2);
  if (as === "serve") keepOptimizedCode();
  const sum = warm();
  const optimizedBefore = (optimizationStatus(hot) & OPTIMIZED) !== 0;
  const majorWhileQuiet = quiet === "reducer" ? await idleAfterGrowth() : collections();
  const optimizedAfter = (optimizationStatus(hot) & OPTIMIZED) !== 0;
  console.log(JSON.stringify({ optimizedBefore, optimizedAfter, majorWhileQuiet, sum }));
}
await main();
