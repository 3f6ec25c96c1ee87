#!/usr/bin/env bash
# The frontend kit's one entry point: npm ci, then typecheck, unit, integration (real server),
# demo dist check and the Chromium browser test. Exits non-zero if anything failed and ends with
#   clients: N passed, M failed
# SB_SERVER_BIN: the server binary (default /tmp/sb-new; the Rust side passes target/debug/switchboard).
# CHROMIUM: the browser (default /usr/bin/chromium).
set -uo pipefail
cd "$(dirname "$0")"
export SB_SERVER_BIN="${SB_SERVER_BIN:-/tmp/sb-new}"
results=.test-results
rm -rf "$results" && mkdir -p "$results"
passed=0
failed=0

# A step that is one check (npm ci, typecheck, ...): 1 passed or 1 failed.
check() {
  local name=$1; shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); else echo "!! $name FAILED"; failed=$((failed + 1)); fi
}

# A vitest run: counts its tests from the JSON report (a crash without a report is 1 failure).
suite() {
  local name=$1 root=$2 dir=$3; shift 3
  local report="$PWD/$results/$name.json"
  echo "== $name"
  npx vitest run --root "$root" "$dir" --reporter=default --reporter=json --outputFile="$report" "$@"
  local rc=$?
  if [[ -f "$report" ]]; then
    # A failed run counts every test that did not pass (a failed beforeAll skips them all).
    read -r p t < <(node -e 'const r=require(process.argv[1]);console.log(r.numPassedTests, r.numTotalTests)' "$report")
    passed=$((passed + p))
    if [[ $rc -ne 0 ]]; then failed=$((failed + (t - p > 0 ? t - p : 1))); fi
  else
    failed=$((failed + 1))
  fi
}

check "npm ci" npm ci --no-audit --no-fund --loglevel=error
if [[ ! -x "$SB_SERVER_BIN" ]]; then echo "!! SB_SERVER_BIN=$SB_SERVER_BIN is not an executable"; fi
check "build (tsc)" npm run --silent build
check "typecheck" npm run --silent typecheck
suite unit js test/unit
suite integration js test/integration
check "demo dist is up to date (check:demo)" npm run --silent check:demo
suite browser demo test --bail 1

echo "clients: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
