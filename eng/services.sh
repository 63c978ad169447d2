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
}

services_start() {
  :
}

services_stop() {
  :
}
