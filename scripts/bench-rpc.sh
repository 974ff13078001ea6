#!/usr/bin/env bash
# `make bench-rpc`: unary ping, 64-byte payload, 127.0.0.1, server and client in separate
# processes, release builds. Three systems, two modes each:
#   platos  the project's RPC runtime (PlatosRPC)            Benchmarks/RPCBenchmark
#   grpc    grpc-swift-2 2.4.3 over its HTTP/2 transport     Benchmarks/GRPCReference (own package)
#   echo    bare SwiftNIO length-prefixed echo               Benchmarks/RPCBenchmark
#   seq         one caller, one call at a time
#   inflight64  64 calls in flight on one connection
# Ends with the four RESULT lines (ratios of figures taken in this same run).
#
# BENCH_SECONDS (default 5) and BENCH_WARMUP (default 1) set each client's measured and
# unmeasured time; BENCH_ONLY=platos|grpc|echo runs one system (then no RESULT lines).
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
WARMUP=${BENCH_WARMUP:-1}
ONLY=${BENCH_ONLY:-}
GRPC_SCRATCH=.build-grpc-reference
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-rpc.XXXXXX")

echo "== building (release)"
$SWIFT build -c release --product platos-bench-rpc
BENCH_BIN=$($SWIFT build -c release --product platos-bench-rpc --show-bin-path)/platos-bench-rpc
if [[ -z "$ONLY" || "$ONLY" == grpc ]]; then
    $SWIFT build -c release --package-path Benchmarks/GRPCReference --scratch-path "$GRPC_SCRATCH" \
        --product grpc-reference-bench
    GRPC_BIN=$($SWIFT build -c release --package-path Benchmarks/GRPCReference --scratch-path "$GRPC_SCRATCH" \
        --show-bin-path)/grpc-reference-bench
fi

SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap 'stop_server; rm -rf "$LOGDIR"' EXIT

# start_server NAME CMD...: starts the server on a free port (it binds port 0 and reports the
# port) and polls its output until it says it is listening. Sets SERVER_PORT.
start_server() {
    local name=$1
    shift
    local log="$LOGDIR/$name.server.log"
    # Bounded even if this script dies without running its trap.
    "$@" --port 0 --max-seconds 600 >"$log" 2>&1 &
    SERVER_PID=$!
    SERVER_PORT=""
    for _ in $(seq 1 1000); do
        if SERVER_PORT=$(sed -n 's/^listening port=\([0-9]*\)$/\1/p' "$log" | head -n1) && [[ -n "$SERVER_PORT" ]]; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "$name server exited before listening:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.01
    done
    echo "$name server did not start listening within 10 s" >&2
    cat "$log" >&2
    exit 1
}

declare -A RPS P50 P99
run_system() {
    local name=$1
    shift
    local client_cmd=("${@}")
    for mode in seq inflight64; do
        local out
        out=$("${client_cmd[@]}" --port "$SERVER_PORT" --mode "$mode" --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP")
        echo "$out" | grep -v '^BENCH ' || true
        local line
        line=$(echo "$out" | grep '^BENCH ')
        echo "$line"
        RPS[$name.$mode]=$(echo "$line" | sed -n 's/.* rps=\([0-9.]*\).*/\1/p')
        P50[$name.$mode]=$(echo "$line" | sed -n 's/.* p50_us=\([0-9.]*\).*/\1/p')
        P99[$name.$mode]=$(echo "$line" | sed -n 's/.* p99_us=\([0-9.]*\).*/\1/p')
    done
}

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, ${SECONDS_PER_RUN} s per mode after ${WARMUP} s warm-up"

if [[ -z "$ONLY" || "$ONLY" == platos ]]; then
    echo "== platos (PlatosRPC)"
    start_server platos "$BENCH_BIN" server
    run_system platos "$BENCH_BIN" client --target platos
    stop_server
fi

if [[ -z "$ONLY" || "$ONLY" == grpc ]]; then
    echo "== grpc (grpc-swift-2 2.4.3, HTTP/2, plaintext)"
    start_server grpc "$GRPC_BIN" server
    run_system grpc "$GRPC_BIN" client
    stop_server
fi

if [[ -z "$ONLY" || "$ONLY" == echo ]]; then
    echo "== echo (bare SwiftNIO length-prefixed echo)"
    start_server echo "$BENCH_BIN" echo-server
    run_system echo "$BENCH_BIN" client --target echo
    stop_server
fi

[[ -z "$ONLY" ]] || exit 0

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.3f\n", a / b }'; }

echo "== summary (targets: inflight64 ≥ 10× grpc and ≥ 0.35× echo throughput, p99 ≤ 0.2× grpc; seq p50 ≤ 0.2× grpc)"
printf '%-8s %-11s %12s %10s %10s\n' system mode 'req/s' 'p50 µs' 'p99 µs'
for name in platos grpc echo; do
    for mode in seq inflight64; do
        printf '%-8s %-11s %12s %10s %10s\n' "$name" "$mode" "${RPS[$name.$mode]}" "${P50[$name.$mode]}" "${P99[$name.$mode]}"
    done
done
echo "RESULT rpc_inflight64_vs_grpc $(ratio "${RPS[platos.inflight64]}" "${RPS[grpc.inflight64]}")"
echo "RESULT rpc_inflight64_vs_echo $(ratio "${RPS[platos.inflight64]}" "${RPS[echo.inflight64]}")"
echo "RESULT rpc_inflight64_p99_vs_grpc $(ratio "${P99[platos.inflight64]}" "${P99[grpc.inflight64]}")"
echo "RESULT rpc_seq_p50_vs_grpc $(ratio "${P50[platos.seq]}" "${P50[grpc.seq]}")"
