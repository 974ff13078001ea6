#!/usr/bin/env bash
# Every COPY source in services/*/Dockerfile (other than --from stages) is in the repository:
# tracked by git, so that a fresh clone (not just this working tree) can build the image.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for dockerfile in services/*/Dockerfile; do
    while read -r _ rest; do
        set -- $rest
        [[ "$1" == --from=* ]] && continue
        args=("$@")
        for src in "${args[@]:0:$((${#args[@]} - 1))}"; do
            if [ -z "$(git ls-files -- "$src" | head -1)" ]; then
                echo "$dockerfile: COPY source '$src' is not a tracked file or directory"
                status=1
            fi
        done
    done < <(grep -E '^COPY ' "$dockerfile")
done
[ $status = 0 ] && echo "Dockerfiles: every COPY source is tracked by git"
exit $status
