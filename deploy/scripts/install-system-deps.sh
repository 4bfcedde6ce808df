#!/usr/bin/env bash
# Installs what the local stack needs from Debian's packages, only when missing (idempotent):
# Java 17+ and Maven (Kafka jars from Maven Central), PostgreSQL, Prometheus, Alertmanager, and
# Chromium with its driver (the browser test of the report and the console).
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ]; }
have java || missing+=(openjdk-17-jre-headless)
have mvn || missing+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || have initdb || missing+=(postgresql)
have prometheus || missing+=(prometheus)
have promtool || missing+=(prometheus)
have prometheus-alertmanager || have alertmanager || missing+=(prometheus-alertmanager)
have amtool || missing+=(prometheus-alertmanager)
have chromium || missing+=(chromium)
have chromedriver || missing+=(chromium-driver)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
# de-duplicate
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "leadflow needs these Debian packages, and installing them needs root:" >&2
  echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  echo "Run that, then run make again." >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    echo "Installing ${missing[*]} with apt-get failed (see above). Check the package sources, then run make again." >&2
    exit 1
  fi
fi
# Debian starts the packaged services; leadflow runs its own copies on its own ports.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter postgresql; do
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
done
