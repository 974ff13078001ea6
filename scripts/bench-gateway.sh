#!/usr/bin/env bash
# `make bench-gateway`: what the gateway costs (issue 8), release build, 127.0.0.1 only.
# platos-bench-gateway starts platos-registry, -memory, -threads and -gateway on free ports with a
# temporary data directory, seeds 64 agents in 32 clusters (a token each), 6,400 memories and a
# thread per agent through the gateway, then drives them with platos-load (see
# Benchmarks/GatewayBenchmark): memory.recall direct to the memory port (signed as the gateway
# signs) vs through the gateway, and context.load vs its calls, each comparison as BENCH_PAIRS
# rounds of both sides back to back. Ends with (medians over the rounds):
#   RESULT gateway_vs_direct <ratio>                 recall calls/s through the gateway / direct, 64 callers
#   RESULT gateway_added_p50_us <µs>                 recall p50 through the gateway − direct, same paced load
#   RESULT context_load_p99_over_slower_ms <ms>      context.load p99 − the slower p99 of recall and messages.list
#   RESULT gateway_added_p50_us_1_caller <µs>        the same p50 difference with one caller
#   RESULT gateway_recall_per_s / direct_recall_per_s
# BENCH_SECONDS (default 3), BENCH_WARMUP (default 1) and BENCH_PAIRS (default 5) set each side's
# measured and unmeasured time and the number of rounds; SCRATCH_PATH sets SwiftPM's build
# directory; extra arguments go to platos-bench-gateway.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
SCRATCH=(--scratch-path "${SCRATCH_PATH:-.build}")
SECONDS_PER_PHASE=${BENCH_SECONDS:-3}
WARMUP=${BENCH_WARMUP:-1}
PAIRS=${BENCH_PAIRS:-5}

echo "== building (release)"
# The benchmark starts the services and platos-load from its own directory.
for product in platos-registry platos-memory platos-threads platos-gateway platos-load platos-bench-gateway; do
    $SWIFT build -c release "${SCRATCH[@]}" --product "$product"
done
BIN=$($SWIFT build -c release "${SCRATCH[@]}" --show-bin-path)

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ)"
# Bounded: 8 runs of platos-load per round plus one, each warm-up + measure + set-up, plus
# start-up and seeding. On SIGTERM (from `timeout`, or from the trap below) the benchmark stops its
# children and removes its data. Each child runs in a process group of its own, so should the
# benchmark itself die without cleaning up (SIGKILL after `--kill-after`, a crash), the EXIT trap
# kills the pids it recorded that are still this build's executables, and removes the work
# directory.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/platos-bench-gateway.XXXXXX")
cleanup() {
    [ -n "${BENCH_PID:-}" ] && kill -TERM "$BENCH_PID" 2>/dev/null && sleep 2
    if [ -f "$WORK/pids" ]; then
        while read -r pid; do
            if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "^$BIN/platos-"; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done < "$WORK/pids"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
LIMIT=$(( (${SECONDS_PER_PHASE%.*} + ${WARMUP%.*} + 8) * (8 * PAIRS + 1) + 300 ))
timeout --kill-after=20 "$LIMIT" "$BIN/platos-bench-gateway" \
    --seconds "$SECONDS_PER_PHASE" --warmup "$WARMUP" --pairs "$PAIRS" --dir "$WORK" --pid-file "$WORK/pids" "$@" &
BENCH_PID=$!
status=0
wait "$BENCH_PID" || status=$?
BENCH_PID=
exit "$status"
