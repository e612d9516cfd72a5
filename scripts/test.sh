#!/usr/bin/env bash
# The test command (`npm test`): builds or reuses the Go-built test infrastructure, runs every
# vitest project, and ends with one plain "N passed, N failed, N skipped" line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
# Debian packages the suites use: headless Chromium renders the report page; `ip` (iproute2)
# gives the chart suite's gate a network namespace the API server can reach through Endpoints;
# jq is in the README's Velero recipe, which a suite runs as written.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v jq >/dev/null 2>&1 || missing+=(jq) # the README's roll-back recipe, run by a test
# The CLI's completion scripts are loaded by the shells they are for; the Argo CD health check
# is Lua 5.1, as Argo CD runs it.
[ -f /usr/share/bash-completion/bash_completion ] || missing+=(bash-completion)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
command -v fish >/dev/null 2>&1 || missing+=(fish)
command -v lua5.1 >/dev/null 2>&1 || missing+=(lua5.1)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "test.sh: Debian packages missing and this is not root: run 'sudo apt-get install ${missing[*]}' (some tests will fail until then)" >&2
  fi
fi
report="$(mktemp -t backup-gate-vitest-XXXXXX.json)"
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$report" || echo "0 passed, 1 failed"
exit "$status"
