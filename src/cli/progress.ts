// Progress for long reads and runs: one line on stderr, rewritten in place, and only on a
// terminal, so pipes and scripts see stdout alone and stderr stays empty.

/** Writes a progress line, or undefined when stderr is not a terminal. */
export function progress(): ((line: string) => void) | undefined {
  return process.stderr.isTTY ? (line) => process.stderr.write(`\r\x1b[2K${line}`) : undefined;
}

/** Clears the progress line before the answer is printed. */
export function clearProgress(): void {
  if (process.stderr.isTTY) process.stderr.write("\r\x1b[2K");
}
