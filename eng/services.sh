# Sourced by eng/test.sh: installs and starts what the tests need, and stops it again.
# Each later service (Azurite for the blob store, SoftHSM2 tokens for the HSM adapter) adds
# an install step to services_install, a start step to services_start and a stop step to
# services_stop, and exports how the tests reach it (a port, a config file) as environment variables.
# Services listen on loopback only and keep their data under artifacts/.

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
}

services_start() {
  # SoftHSM2: a fresh token folder under artifacts/ for each run. The tests write their own config
  # there (tokendir = that folder) and initialise their own tokens, so nothing outside it is touched.
  local softhsm_dir="$root/artifacts/softhsm2"
  rm -rf "$softhsm_dir"
  mkdir -p "$softhsm_dir/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$softhsm_dir/tokens" >"$softhsm_dir/softhsm2.conf"
  export KMSBACKUP_SOFTHSM_DIR="$softhsm_dir"
  export SOFTHSM2_CONF="$softhsm_dir/softhsm2.conf"
  export KMSBACKUP_PKCS11_LIBRARY="${KMSBACKUP_PKCS11_LIBRARY:-/usr/lib/softhsm/libsofthsm2.so}"
}

services_stop() {
  :
}
