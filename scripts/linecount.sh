#!/bin/sh
# Python lines per house (README "Two houses"): engine, content, and the lab inside the content.
cd "$(dirname "$0")/.." || exit 1
for d in gfsdeploy gfsdeploy_glusterfs gfsdeploy_glusterfs/lab; do
    printf '%s %s\n' "$d" "$(find "$d" -name '*.py' -exec cat {} + | wc -l)"
done
