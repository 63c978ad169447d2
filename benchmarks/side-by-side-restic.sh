#!/usr/bin/env bash
# Side by side (issue 15): what a user would do instead of this SDK, dump the instance to a JSONL file and back the
# file up with restic, against the engine's incremental run of the same changes.
#
#   benchmarks/side-by-side-restic.sh [items] [changes]
#
# Defaults: 1,000,000 items, 100 changes. Installs restic 0.14.0 from Debian's packages when it is missing (as root),
# works in artifacts/side-by-side/ (deleted at the start of each run), and prints a markdown table. Needs about
# 2 x 280 MB of disk at 1,000,000 items.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

items="${1:-1000000}"
changes="${2:-100}"
restic_version="0.14.0-1+b5"

if ! command -v restic >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "restic is missing: install it (apt-get install restic=$restic_version) or run this as root." >&2
    exit 2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "restic=$restic_version" >/dev/null 2>&1
fi

work=artifacts/side-by-side
rm -rf "$work"
mkdir -p "$work/export"
export RESTIC_REPOSITORY="$work/restic-repo" RESTIC_PASSWORD="side-by-side" RESTIC_CACHE_DIR="$work/restic-cache"

dotnet build benchmarks/KmsBackup.Benchmarks -c Release -v q -nologo >/dev/null
bench() { dotnet run -c Release --no-build --project benchmarks/KmsBackup.Benchmarks -- "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

echo "## restic $(restic version | awk '{print $2}') and the engine: $items items, $changes changes"
echo
bench --export "$work/export/instance.jsonl" --items "$items" --changes 0 | sed 's/^/    /'
restic init -q
restic backup -q "$work/export" >/dev/null # the first backup, not timed

bench --export "$work/changed.jsonl" --items "$items" --changes "$changes" | sed 's/^/    /'
mv "$work/changed.jsonl" "$work/export/instance.jsonl"
start=$(now_ms)
summary=$(restic backup --json "$work/export" | tail -1)
restic_ms=$(( $(now_ms) - start ))
restic_added=$(echo "$summary" | sed -n 's/.*"data_added":\([0-9]*\).*/\1/p')
restic_total=$(restic stats --json --mode raw-data | sed -n 's/.*"total_size":\([0-9]*\).*/\1/p')

engine=$(bench --engine-incremental --items "$items" --changes "$changes" --rounds 3)
echo "$engine" | sed 's/^/    /'
engine_ms=$(echo "$engine" | sed -n 's/^engine incremental [0-9]* of [0-9]* changes: \([0-9]*\) ms.*/\1/p' | sort -n | sed -n 2p)
engine_added=$(echo "$engine" | sed -n 's/^engine incremental 1 of [0-9]* changes: [0-9]* ms, \([0-9]*\) bytes.*/\1/p')

echo
echo "| | backup of the changes | bytes the backup added (restic: before compression) | restic repository after it (raw data) |"
echo "|---|---|---|---|"
echo "| restic, JSONL export | ${restic_ms} ms (the whole restic process, timed by this script) | ${restic_added} | ${restic_total} |"
echo "| engine incremental | ${engine_ms} ms (median of 3 runs, timed in process) | ${engine_added} (first run) | |"
echo
awk -v r="$restic_ms" -v e="$engine_ms" 'BEGIN { printf "restic / engine: %.1fx (issue 15 asks for the engine to be at least 20x faster)\n", r / e }'
echo
echo "The export itself (writing the JSONL dump) is not timed: a user's dump would cost its own time on top of restic's."
