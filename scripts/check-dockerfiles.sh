#!/usr/bin/env bash
# Every COPY source in services/*/Dockerfile (other than --from stages) is in the repository:
# tracked by git, so that a fresh clone (not just this working tree) can build the image, and
# not left out of the build context by a .dockerignore pattern.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
ignored=()
while read -r pattern; do
    [[ -z "$pattern" || "$pattern" == \#* ]] && continue
    ignored+=("$pattern")
done < .dockerignore
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
            for pattern in "${ignored[@]}"; do
                # shellcheck disable=SC2053 # the pattern is a glob on purpose
                if [[ "$src" == $pattern || "$src" == $pattern/* ]]; then
                    echo "$dockerfile: COPY source '$src' is excluded by .dockerignore ('$pattern')"
                    status=1
                fi
            done
        done
    done < <(grep -E '^COPY ' "$dockerfile")
done
[ $status = 0 ] && echo "Dockerfiles: every COPY source is tracked by git and in the build context"
exit $status
