#!/usr/bin/env bash
# `make bench-memory`: the memory service's recall and write benchmark (issue 6), release build,
# 127.0.0.1 only, a few minutes. Every recall and write goes over TCP to the real
# `platos-memory`; the corpus (10k and 1M memories, 100 per scope) is bulk-loaded into SQLite
# first. Ends with the five RESULT lines.
#
# SCRATCH_PATH sets SwiftPM's build directory (default .build); extra arguments go to the
# benchmark (for example `--large-scopes 1000` for a quicker run; see Benchmarks/MemoryBenchmark).
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
SCRATCH=(--scratch-path "${SCRATCH_PATH:-.build}")

echo "== building (release)"
# The benchmark starts the service from its own directory, so both are built into the same one.
$SWIFT build -c release "${SCRATCH[@]}" --product platos-memory
$SWIFT build -c release "${SCRATCH[@]}" --product platos-bench-memory
BIN=$($SWIFT build -c release "${SCRATCH[@]}" --show-bin-path)

echo "== running"
exec "$BIN/platos-bench-memory" --dir "${TMPDIR:-/tmp}/platos-bench-memory.$$" "$@"
