#!/usr/bin/env bash
# What installing the package costs beyond torch: a fresh venv gets the torch pins first (not
# timed, from this machine kind's local wheel store), then `pip install --no-cache-dir SRC`
# without extras is timed and the venv's growth measured. Prints one JSON object.
#   bash benchmarks/install_weight.sh .            # this checkout
#   bash benchmarks/install_weight.sh /tmp/old_src # a worktree of another commit, for a before/after
set -euo pipefail
SRC=$(cd "${1:-.}" && pwd)
VENV=$(mktemp -d)/venv
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
before=$(du -sm "$VENV" | cut -f1)
start=$(date +%s.%N)
"$VENV/bin/pip" install -q --no-cache-dir "$SRC"
end=$(date +%s.%N)
after=$(du -sm "$VENV" | cut -f1)
packages=$("$VENV/bin/pip" list --format=freeze | wc -l)
commit=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
printf '{"commit": "%s", "install_s": %.1f, "mb_beyond_torch": %d, "packages": %d}\n' \
    "$commit" "$(echo "$end - $start" | bc)" "$((after - before))" "$packages"
rm -rf "$(dirname "$VENV")"
