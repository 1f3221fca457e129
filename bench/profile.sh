#!/usr/bin/env bash
# A CPU profile of the client at 50 callers (bench/profile-target.mjs) with Linux perf, by shared
# object and by symbol. Release builds keep their symbol table (Cargo.toml: strip = "debuginfo"),
# so the addon's frames have names. Needs `perf` (Debian: linux-perf) and `npm run build` first.
#   bench/profile.sh                 # 5 s, report to stdout
#   PROFILE_MS=10000 bench/profile.sh
#   PROFILE_SHAPE=anon PROFILE_CALLERS=10 bench/profile.sh   # builder on a user client (also: raw, builder)
#   PROFILE_TARGET=openai bench/profile.sh   # the exported openai client (bench/profile-openai.mjs)
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(mktemp /tmp/connection-pools-perf.XXXXXX)
target=bench/profile-target.mjs
[ "${PROFILE_TARGET:-}" = openai ] && target=bench/profile-openai.mjs
perf record -F 499 -g -o "$data" -- node --perf-basic-prof "$target"
echo "--- CPU by shared object (the addon is connection-pools.*.node; [kernel.kallsyms] is syscalls and wake-ups)"
perf report -i "$data" --no-children -g none --percent-limit 0.5 --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15
echo "--- hottest symbols"
perf report -i "$data" --no-children -g none --percent-limit 0.5 --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep -E '^ +[0-9]' | head -40
rm -f "$data"
