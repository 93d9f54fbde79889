#!/bin/sh
# Two virtual environments with PyPI's kubernetes-validate, because one install
# carries only one range of Kubernetes schemas:
#   kv-1.20 (kubernetes-validate 1.20.0): schemas 1.10–1.20, used for 1.11
#   kv-1.37 (kubernetes-validate 1.37.0): schemas 1.25–1.37, used for 1.25
# Idempotent: an environment whose CLI already runs is left alone.
# Usage: tests/tools/kubernetes_validate_envs.sh [CACHE_DIR]   (prints CACHE_DIR)
set -eu
cache=${1:-${GFSDEPLOY_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gfsdeploy-test}}
python=${PYTHON:-python3}
mkdir -p "$cache"
for version in 1.20.0 1.37.0; do
    env="$cache/kv-${version%.*}"
    if "$env/bin/kubernetes-validate" --version >/dev/null 2>&1; then
        continue
    fi
    rm -rf "$env"
    "$python" -m venv "$env" >&2
    "$env/bin/pip" install --quiet "kubernetes-validate==$version" >&2
done
echo "$cache"
