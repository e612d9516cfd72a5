/**
 * Preloaded (`--import`) into the gates the harness starts: when the test process that holds the
 * other end of the gate's stdin dies, even by SIGKILL, the pipe closes and the gate stops as on
 * SIGTERM, instead of outliving the suite. The gate itself never reads stdin.
 */
process.stdin.on("end", () => process.kill(process.pid, "SIGTERM"));
process.stdin.on("error", () => process.kill(process.pid, "SIGTERM"));
process.stdin.resume();
