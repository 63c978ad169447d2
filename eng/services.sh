# Sourced by eng/test.sh: installs and starts what the tests need, and stops it again.
# Each later service (Azurite for the blob store, SoftHSM2 tokens for the HSM adapter) adds
# an install step to services_install, a start step to services_start and a stop step to
# services_stop, and exports how the tests reach it (a port, a config file) as environment variables.
# Services listen on loopback only and keep their data under artifacts/.

# Azurite, the Azure Storage emulator, for the Azure Blob store's tests: pinned, from npm, into a
# tools folder of the project's own (gitignored, kept between runs).
AZURITE_VERSION=3.37.0
services_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AZURITE_HOME="$services_root/artifacts/tools/azurite"
AZURITE_BLOB="$AZURITE_HOME/node_modules/.bin/azurite-blob"
azurite_pid=""

services_install() {
  # The time-zone tests need the IANA time zone database (Europe/Berlin, America/Santiago, ...).
  if [ ! -e /usr/share/zoneinfo/Europe/Berlin ]; then
    echo "Installing tzdata (the IANA time zone database)..."
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tzdata
    else
      echo "tzdata is missing and this user cannot install it: run 'sudo apt-get install tzdata'." >&2
      return 1
    fi
  fi

  # The HSM adapter's tests use real SoftHSM2 tokens (tests/KmsBackup.Hsm.Pkcs11.Tests).
  if [ ! -e "${KMSBACKUP_PKCS11_LIBRARY:-/usr/lib/softhsm/libsofthsm2.so}" ]; then
    echo "Installing SoftHSM2 (PKCS#11 tokens for the HSM adapter's tests)..."
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2
    elif [ "${CI:-}" = "true" ]; then
      echo "SoftHSM2 is missing and this user cannot install it: run 'sudo apt-get install softhsm2'." >&2
      return 1
    else
      echo "SoftHSM2 is missing: its tests will be skipped (run 'sudo apt-get install softhsm2' to run them)." >&2
    fi
  fi

  azurite_install
}

azurite_install() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "Installing Node.js and npm (for Azurite)..."
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
    else
      echo "Node.js and npm are missing and this user cannot install them: run 'sudo apt-get install nodejs npm'." >&2
      return 1
    fi
  fi
  local installed=""
  if [ -f "$AZURITE_HOME/node_modules/azurite/package.json" ]; then
    installed=$(node -p "require('$AZURITE_HOME/node_modules/azurite/package.json').version" 2>/dev/null || true)
  fi
  if [ "$installed" = "$AZURITE_VERSION" ] && [ -x "$AZURITE_BLOB" ]; then
    return 0
  fi
  echo "Installing Azurite $AZURITE_VERSION into artifacts/tools/azurite (about a minute)..."
  rm -rf "$AZURITE_HOME"
  mkdir -p "$AZURITE_HOME"
  # Azurite 3.37.0 declares Node.js >= 22 but runs the blob service on Node.js 20 (the engine warning is expected).
  (cd "$AZURITE_HOME" && npm install --no-audit --no-fund --loglevel=error --prefix . "azurite@$AZURITE_VERSION") || {
    echo "Installing Azurite $AZURITE_VERSION with npm failed." >&2
    return 1
  }
}

# A loopback port that nothing listens on (a connection to it is refused).
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "No free loopback port found." >&2
  return 1
}

azurite_start() {
  local data="$services_root/artifacts/azurite-data"
  local port
  for _ in 1 2 3; do
    port=$(free_port)
    rm -rf "$data"
    mkdir -p "$data"
    "$AZURITE_BLOB" --blobHost 127.0.0.1 --blobPort "$port" --location "$data" --silent --skipApiVersionCheck \
      >"$services_root/artifacts/azurite.log" 2>&1 &
    azurite_pid=$!
    # Wait until it accepts connections (bash's /dev/tcp: no HTTP client needed).
    for _ in $(seq 1 100); do
      if ! kill -0 "$azurite_pid" 2>/dev/null; then
        break
      fi
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "Azurite $AZURITE_VERSION listens on 127.0.0.1:$port (pid $azurite_pid)."
        # The emulator's well-known development account (public, documented by Microsoft for Azurite).
        export KMSBACKUP_AZURITE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;"
        # Tests that stop and restart an emulator of their own (fault tests) start this executable.
        export KMSBACKUP_AZURITE_BLOB="$AZURITE_BLOB"
        return 0
      fi
      sleep 0.2
    done
    kill "$azurite_pid" 2>/dev/null || true
    wait "$azurite_pid" 2>/dev/null || true
    azurite_pid=""
    echo "Azurite did not start on port $port; trying another." >&2
  done
  echo "Azurite did not start; see artifacts/azurite.log." >&2
  return 1
}

azurite_stop() {
  if [ -n "$azurite_pid" ]; then
    kill "$azurite_pid" 2>/dev/null || true
    wait "$azurite_pid" 2>/dev/null || true
    azurite_pid=""
  fi
}

services_start() {
  # SoftHSM2: a fresh token folder under artifacts/ for each run. The tests write their own config
  # there (tokendir = that folder) and initialise their own tokens, so nothing outside it is touched.
  local softhsm_dir="$services_root/artifacts/softhsm2"
  rm -rf "$softhsm_dir"
  mkdir -p "$softhsm_dir/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$softhsm_dir/tokens" >"$softhsm_dir/softhsm2.conf"
  export KMSBACKUP_SOFTHSM_DIR="$softhsm_dir"
  export SOFTHSM2_CONF="$softhsm_dir/softhsm2.conf"
  export KMSBACKUP_PKCS11_LIBRARY="${KMSBACKUP_PKCS11_LIBRARY:-/usr/lib/softhsm/libsofthsm2.so}"

  azurite_start
}

services_stop() {
  azurite_stop
}
