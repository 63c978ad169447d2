#!/usr/bin/env bash
# The project's test command (README "Running the tests"; .ci/run calls exactly this).
# Installs what the tests need, starts the services they use, restores, builds in Release with
# warnings as errors, runs every test project under tests/, stops the services, and ends with
# the plain line "N passed, N failed, N skipped" computed from the TRX results.
# Exit code: 0 only when every test project ran, at least one test ran, none failed, and (when
# CI=true) none was skipped.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

results="$root/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"

# shellcheck source=eng/services.sh
source "$root/eng/services.sh"
services_install
trap services_stop EXIT
services_start

dotnet restore KmsBackup.Sdk.sln
dotnet build KmsBackup.Sdk.sln -c Release --no-restore

run_status=0
# Test projects are named <Project>.Tests; other projects under tests/ (KmsBackup.TestHost) are helpers.
projects=(tests/*.Tests/*.csproj)
for project in "${projects[@]}"; do
  name=$(basename "$project" .csproj)
  echo "== $name"
  dotnet test "$project" -c Release --no-build \
    --logger "trx;LogFileName=$name.trx" --results-directory "$results" || run_status=1
done

passed=0 failed=0 skipped=0 missing=0
for project in "${projects[@]}"; do
  name=$(basename "$project" .csproj)
  trx="$results/$name.trx"
  if [ ! -f "$trx" ]; then
    echo "No results from $name: its test run did not complete." >&2
    missing=$((missing + 1))
    continue
  fi
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  count() { printf '%s' "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
  p=$(count passed); f=$(count failed); e=$(count error); t=$(count timeout); a=$(count aborted); n=$(count notExecuted)
  passed=$((passed + p)); failed=$((failed + f + e + t + a)); skipped=$((skipped + n))
done

status=0
[ "$run_status" -eq 0 ] || status=1
[ "$missing" -eq 0 ] || { failed=$((failed + missing)); status=1; }
[ "$failed" -eq 0 ] || status=1
[ "$passed" -gt 0 ] || { echo "No test ran." >&2; status=1; }
if [ "${CI:-}" = "true" ] && [ "$skipped" -gt 0 ]; then
  echo "$skipped tests were skipped; no test may be skipped in CI." >&2
  status=1
fi

echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
