#!/usr/bin/env bash
# The interleaving soak: the seeded randomized interleaving test (tests/KmsBackup.Testing/Engine/
# InterleavingContractTests.cs) over many more schedules than CI runs, on the file-system store or on
# Azure Blob Storage (Azurite).
#
#   eng/soak.sh [schedules] [first seed] [filesystem|azure]
#
# Defaults: 50000 schedules from seed 2000 (CI runs seeds 0-1999 on the file system, 0-49 on Azurite),
# on the file-system store. A failing seed is printed with its schedule and the command that reruns it
# alone; keep it as an [InlineData] example of the test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

schedules="${1:-50000}"
first_seed="${2:-2000}"
store="${3:-filesystem}"

case "$store" in
  filesystem)
    project=tests/KmsBackup.Tests
    class=FileSystemInterleavingTests
    ;;
  azure)
    project=tests/KmsBackup.Storage.AzureBlob.Tests
    class=AzureBlobInterleavingTests
    # shellcheck source=eng/services.sh
    source eng/services.sh
    azurite_install
    azurite_start
    trap azurite_stop EXIT
    ;;
  *)
    echo "usage: eng/soak.sh [schedules] [first seed] [filesystem|azure]" >&2
    exit 2
    ;;
esac

dotnet build "$project" -c Release
echo "Soak: $schedules schedules from seed $first_seed on the $store store..."
KMSBACKUP_INTERLEAVING_SCHEDULES="$schedules" KMSBACKUP_INTERLEAVING_FIRST_SEED="$first_seed" \
  dotnet test "$project" -c Release --no-build \
    --filter "FullyQualifiedName~$class.Interleaved" \
    --logger "console;verbosity=detailed"
