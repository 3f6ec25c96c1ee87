#!/usr/bin/env bash
# Instructions the server executes per delivered message, counted by valgrind (cachegrind): a
# figure that does not move with a noisy neighbour, for before/after comparisons of CPU work.
#
#   load-tests/instructions.sh                    # 20 pairs × 5 msg/s, runs of 8 s and 16 s
#   load-tests/instructions.sh --pairs 40 --short-s 6 --long-s 12 --top 40
#
# How: the release server runs under cachegrind (instruction counts only, no cache simulation) twice, on a fresh store each time, while the
# Rust generator runs the pairs scenario against it (no warm-up, so every message is counted):
# once for SHORT seconds and once for LONG. Start-up, setup (conversations, tokens), connecting
# and shutting down cost the same in both runs, so
#
#   instructions per message = (Ir(long) − Ir(short)) / (messages(long) − messages(short))
#
# counts only what the extra messages cost (plus the idle timers of the extra seconds, which
# are small). `cg_diff` subtracts the short run from the long one function by function, and the
# top functions of that difference, divided by the extra messages, are the per-message breakdown.
#
# Under valgrind the server runs ~50× slower on one core, so keep the rate low: the figure is
# per message and does not depend on the rate as long as the server keeps up (the script checks
# that every message was delivered). Group commit batches differ with the rate, so compare runs
# made with the same arguments only.
#
# Environment: SERVER_BIN (default target/release/switchboard), HTTP_ADDR / ADMIN_ADDR (loopback).
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=20 interval_ms=200 short_s=8 long_s=16 top=30
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs=$2; shift 2 ;;
    --interval-ms) interval_ms=$2; shift 2 ;;
    --short-s) short_s=$2; shift 2 ;;
    --long-s) long_s=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    *) echo "usage: $0 [--pairs N] [--interval-ms MS] [--short-s S] [--long-s S] [--top N]" >&2; exit 64 ;;
  esac
done
[ "$long_s" -gt "$short_s" ] || { echo "--long-s must be longer than --short-s" >&2; exit 64; }
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 69; }

HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:18180}
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:19190}
case "$HTTP_ADDR$ADMIN_ADDR" in
  127.*127.*) ;;
  *) echo "instructions.sh: load tests only target loopback addresses" >&2; exit 64 ;;
esac
server_bin=${SERVER_BIN:-target/release/switchboard}
if [ -z "${SERVER_BIN:-}" ]; then
  cargo build --release --workspace --quiet
else
  cargo build --release -p switchboard-load --quiet
fi

work=$(mktemp -d)
cleanup() {
  if [ -n "${server_pid:-}" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# One run: the server under cachegrind for `seconds` of pairs traffic. Prints "IR MESSAGES".
run_once() {
  local seconds=$1 dir="$work/run-$1"
  mkdir -p "$dir"
  SWITCHBOARD_STORE__PATH="$dir/store" \
  SWITCHBOARD_HTTP__ADDR="$HTTP_ADDR" \
  SWITCHBOARD_ADMIN__ADDR="$ADMIN_ADDR" \
  SWITCHBOARD_LIMITS__MESSAGES_PER_MINUTE=0 \
  SWITCHBOARD_LIMITS__CONVERSATIONS_PER_HOUR=0 \
  RUST_LOG=warn \
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$dir/cachegrind.out" \
      "$server_bin" serve --config config/local.toml >"$dir/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    if curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null 2>&1; then break; fi
    sleep 0.2
  done
  curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null || { echo "server did not become ready:" >&2; cat "$dir/server.log" >&2; exit 1; }
  target/release/switchboard-load --http "$HTTP_ADDR" --admin "$ADMIN_ADDR" pairs \
    --pairs "$pairs" --interval-ms "$interval_ms" --duration-s "$seconds" --warmup-s 0 --drain-s 20 \
    >"$dir/load.txt" 2>&1 || { echo "the load run failed:" >&2; cat "$dir/load.txt" >&2; exit 1; }
  kill -TERM "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  python3 - "$dir/load.txt" "$dir/cachegrind.out" <<'PY'
import json, sys
r = {}
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("RESULT "):
        r = json.loads(line[7:])
if not r or r["lost"] or r["errors"] or r["delivered"] != r["sent"]:
    sys.exit(f"not every message was delivered (the server fell behind under valgrind?): {r}")
ir = None
for line in open(sys.argv[2], errors="replace"):
    if line.startswith("summary:"):
        ir = int(line.split()[1])
if ir is None:
    sys.exit("no summary in the cachegrind output")
print(ir, r["delivered"])
PY
}

echo "instructions: $pairs pairs × one message per $interval_ms ms, runs of ${short_s} s and ${long_s} s under cachegrind…" >&2
read -r ir_short n_short < <(run_once "$short_s")
read -r ir_long n_long < <(run_once "$long_s")
per_msg=$(( (ir_long - ir_short) / (n_long - n_short) ))
echo "instructions: short run $ir_short Ir for $n_short messages; long run $ir_long Ir for $n_long messages" >&2

extra=$((n_long - n_short))
echo "Instructions per message by function (the long run minus the short one, ÷ $extra messages):"
cg_diff "$work/run-$short_s/cachegrind.out" "$work/run-$long_s/cachegrind.out" >"$work/diff.out" 2>/dev/null
cg_annotate --auto=no --threshold=0 "$work/diff.out" 2>/dev/null | python3 -c '
import re, sys
n, top = int(sys.argv[1]), int(sys.argv[2])
by_fn, total = {}, 0
for line in sys.stdin:
    m = re.match(r"\s*(-?[0-9,]+)\s+\([^)]*\)\s+(.*)", line)
    if not m or "PROGRAM TOTALS" in line:
        continue
    ir = int(m.group(1).replace(",", ""))
    # "file:function" (debug info splits a function by the file its inlined lines came from)
    fn = re.sub(r"^[^ ]*?\.(rs|S|c|h|cc|cpp):", "", m.group(2).strip())
    by_fn[fn] = by_fn.get(fn, 0) + ir
    total += ir
for fn, ir in sorted(by_fn.items(), key=lambda kv: -kv[1])[:top]:
    print(f"{ir / n:9.0f}  {100 * ir / total:5.1f}%  {fn[:150]}")
' "$extra" "$top"
echo "RESULT {\"scenario\":\"instructions\",\"pairs\":$pairs,\"interval_ms\":$interval_ms,\"messages\":$((n_long - n_short)),\"instructions_per_message\":$per_msg}"
