#!/usr/bin/env bash
# Every COPY source in services/*/Dockerfile (other than --from stages) exists in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for dockerfile in services/*/Dockerfile; do
    while read -r _ rest; do
        set -- $rest
        [[ "$1" == --from=* ]] && continue
        args=("$@")
        for src in "${args[@]:0:$((${#args[@]} - 1))}"; do
            if [ ! -e "$src" ]; then echo "$dockerfile: COPY source '$src' does not exist"; status=1; fi
        done
    done < <(grep -E '^COPY ' "$dockerfile")
done
[ $status = 0 ] && echo "Dockerfiles: every COPY source exists"
exit $status
