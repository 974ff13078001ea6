#!/usr/bin/env bash
# The dev stack: builds the four services (release), starts them on embedded SQLite under one
# data directory, waits until each is ready, and prints the gateway address and an admin token.
# Ctrl-C stops all four gracefully (SIGTERM, in reverse order). A second run reuses the data.
#
# Environment: PLATOS_DATA_DIR (./data), PLATOS_GATEWAY_PORT (7400), PLATOS_REGISTRY_PORT (7401),
# PLATOS_MEMORY_PORT (7402), PLATOS_THREADS_PORT (7403), PLATOS_ORG/PROJECT/ENV (demo/demo/dev).
set -euo pipefail
cd "$(dirname "$0")/.."

data=${PLATOS_DATA_DIR:-./data}
gateway_port=${PLATOS_GATEWAY_PORT:-7400}
registry_port=${PLATOS_REGISTRY_PORT:-7401}
memory_port=${PLATOS_MEMORY_PORT:-7402}
threads_port=${PLATOS_THREADS_PORT:-7403}
org=${PLATOS_ORG:-demo} project=${PLATOS_PROJECT:-demo} env=${PLATOS_ENV:-dev}

for product in platos-registry platos-memory platos-threads platos-gateway; do
    swift build -c release --product "$product"
done
bin=$(swift build -c release --show-bin-path)
mkdir -p "$data/logs"

if [ ! -s "$data/admin.token" ]; then
    "$bin/platos-registry" issue-admin-token --org "$org" --project "$project" --env "$env" --data-dir "$data" \
        > "$data/admin.token"
    chmod 600 "$data/admin.token"
fi

pids=()
stop() {
    trap - INT TERM
    echo
    echo "stopping..."
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
    status=0
    for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
    echo "stopped (exit $status)"
    exit "$status"
}
trap stop INT TERM

# start NAME ARGS...: runs platos-NAME in the background and waits for its READY line.
start() {
    local name=$1; shift
    local log="$data/logs/$name.log"
    : > "$log"
    "$bin/platos-$name" --data-dir "$data" "$@" >> "$log" 2>&1 &
    pids+=($!)
    local deadline=$((SECONDS + 30))
    until grep -q "^READY " "$log"; do
        if ! kill -0 "${pids[-1]}" 2>/dev/null; then echo "platos-$name failed to start:"; cat "$log"; stop; fi
        if ((SECONDS > deadline)); then echo "platos-$name not ready after 30 s:"; cat "$log"; stop; fi
        sleep 0.1
    done
    echo "  $(grep -m1 '^READY ' "$log")"
}

echo "starting the Platos dev stack in $data"
start registry --port "$registry_port"
start memory --port "$memory_port"
start threads --port "$threads_port" --registry "127.0.0.1:$registry_port"
start gateway --port "$gateway_port" --registry "127.0.0.1:$registry_port" \
    --memory "127.0.0.1:$memory_port" --threads "127.0.0.1:$threads_port"

cat <<INFO

Platos is up.
  gateway:      127.0.0.1:$gateway_port
  scope:        $org/$project/$env
  admin token:  $(cat "$data/admin.token")
  logs:         $data/logs/

Call it with any client that speaks the wire format in README.md, metadata
'authorization: Bearer <admin token>'. (The 'platos call' CLI is not written yet.)
Ctrl-C stops the stack.
INFO

# Report a child that dies, and take the rest down with it.
while true; do
    for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[$i]}" 2>/dev/null; then
            echo "a service exited unexpectedly (pid ${pids[$i]}); see $data/logs/"
            stop
        fi
    done
    sleep 1
done
