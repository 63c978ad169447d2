#!/usr/bin/env bash
# Adds every new public symbol of the packable projects to their PublicAPI.Unshipped.txt.
# Review the diff before committing: it is the public API change of your work.
set -euo pipefail
cd "$(dirname "$0")/.."
for project in src/*/*.csproj; do
  dotnet format analyzers "$project" --diagnostics RS0016 --severity warn
done
