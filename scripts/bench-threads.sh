#!/usr/bin/env bash
# `make bench-threads`: the threads service under load, release build, 127.0.0.1 only.
# The service runs inside the benchmark process (real RPC server and client over loopback,
# in-memory cluster directory instead of a registry); see Benchmarks/ThreadsBenchmark/main.swift.
# Ends with:
#   RESULT posts_per_s <n>              acknowledged messages.post/s, 64 callers over 1,000 threads
#   RESULT list_p99_ms <ms>             messages.list (50 messages) p99 under the same callers
#   RESULT task_roundtrips_per_s <n>    spawn → claim → complete round trips/s, 64 pairs
# Each phase's line also gives the process's CPU time per call, steadier than calls/s on a shared
# machine.
# BENCH_SECONDS (default 5) and BENCH_WARMUP (default 1) set each phase's measured and unmeasured
# time; BENCH_TRANSPORT=in-process skips the sockets.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
SECONDS_PER_PHASE=${BENCH_SECONDS:-5}
WARMUP=${BENCH_WARMUP:-1}
TRANSPORT=${BENCH_TRANSPORT:-tcp}

echo "== building (release)"
$SWIFT build -c release --product platos-bench-threads
BIN=$($SWIFT build -c release --product platos-bench-threads --show-bin-path)/platos-bench-threads

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ)"
# Bounded: three phases of warm-up + measure, plus set-up; killed if it ever hangs.
timeout $(( (${SECONDS_PER_PHASE%.*} + ${WARMUP%.*} + 2) * 3 + 120 )) \
    "$BIN" --seconds "$SECONDS_PER_PHASE" --warmup "$WARMUP" --callers 64 --threads 1000 --transport "$TRANSPORT"
