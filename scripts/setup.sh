#!/usr/bin/env bash
# Installs what promgate's end-to-end tests and ingest benchmark need: the real peers from
# Debian's packages (Prometheus 2.42 with promtool, Alertmanager 0.25, Pushgateway 1.5,
# VictoriaMetrics single node and vmagent), a Python virtualenv at target/py with the PyPI
# packages the tests drive (prometheus_client as a pushing job, aiosmtpd as the SMTP server),
# and checks the Rust toolchain. Idempotent: when everything is present it only checks, in well under a
# second. Fails (non-zero, with the reason) when a peer cannot be installed.
#
# Packages are installed without starting their services (policy-rc.d answers 101 during the
# install) and without Recommends (prometheus recommends prometheus-node-exporter, a daemon on
# :9100). Afterwards any of these services found running is stopped: the tests start their
# own processes on free loopback ports and want no stray daemon holding 9090/8428/9100.
#
# Usage: scripts/setup.sh        (as root, or with sudo available)
set -euo pipefail

die() {
  echo "setup.sh: error: $*" >&2
  exit 1
}
note() { echo "setup.sh: $*"; }

# package -> binary it must provide
declare -A BIN=(
  [prometheus]=/usr/bin/prometheus
  [victoria-metrics]=/usr/bin/victoria-metrics
  [prometheus-alertmanager]=/usr/bin/prometheus-alertmanager
  [prometheus-pushgateway]=/usr/bin/prometheus-pushgateway
)
# Services the packages ship, and their default ports.
SERVICES=(prometheus victoria-metrics prometheus-node-exporter prometheus-alertmanager
  prometheus-pushgateway)
DEFAULT_PORTS=(9090 8428 9100 9093 9091)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi
as_root() {
  if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
    die "need root (or sudo) to run: $*"
  fi
  "${SUDO[@]}" "$@"
}

missing=()
for pkg in "${!BIN[@]}"; do
  if ! installed "$pkg" || [ ! -x "${BIN[$pkg]}" ]; then missing+=("$pkg"); fi
done
# The harness sends SIGTERM with kill(1).
if [ ! -x /usr/bin/kill ] && [ ! -x /bin/kill ]; then missing+=(procps); fi
if ! command -v promtool >/dev/null 2>&1; then
  # promtool ships in the prometheus package.
  [[ " ${missing[*]} " == *" prometheus "* ]] || missing+=(prometheus)
fi

if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; cannot install ${missing[*]}"
  note "installing ${missing[*]} (apt-get)"
  # Keep package scripts from starting daemons during the install.
  policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    policy_created=1
  fi
  cleanup() { if [ "$policy_created" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi; }
  trap cleanup EXIT
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
    die "apt-get update failed; cannot install ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" || die "apt-get install ${missing[*]} failed"
  cleanup
  trap - EXIT
fi

# Verify the peers are there and run.
for pkg in "${!BIN[@]}"; do
  [ -x "${BIN[$pkg]}" ] || die "$pkg is installed but ${BIN[$pkg]} is missing"
done
prom_version=$(/usr/bin/prometheus --version 2>&1 | head -n1) ||
  die "/usr/bin/prometheus does not run: $prom_version"
case "$prom_version" in
  *"version 2.42."*) ;;
  *) note "warning: tests and BENCHMARKS.md target Prometheus 2.42; found: $prom_version" ;;
esac
command -v promtool >/dev/null 2>&1 || die "promtool missing (package prometheus)"
# vmagent ships in the victoria-metrics package; the ingest benchmark measures it too.
[ -x /usr/bin/vmagent ] || die "/usr/bin/vmagent missing (package victoria-metrics)"
/usr/bin/victoria-metrics --help >/dev/null 2>&1 ||
  /usr/bin/victoria-metrics -help 2>&1 | grep -qi victoria ||
  die "/usr/bin/victoria-metrics does not run"

# No package daemon may hold a port (Debian's postinst starts services where it can).
for svc in "${SERVICES[@]}"; do
  if [ -x "/etc/init.d/$svc" ] && as_root service "$svc" status >/dev/null 2>&1; then
    note "stopping the $svc service the package started"
    as_root service "$svc" stop >/dev/null 2>&1 || die "cannot stop service $svc"
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    if systemctl is-active --quiet "$svc" 2>/dev/null; then
      note "stopping and disabling systemd unit $svc"
      as_root systemctl disable --now "$svc" >/dev/null 2>&1 || die "cannot stop unit $svc"
    fi
  fi
done
if command -v ss >/dev/null 2>&1; then
  for port in "${DEFAULT_PORTS[@]}"; do
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
      note "warning: port $port is held by another process (tests use their own free ports)"
    fi
  done
fi

command -v cargo >/dev/null 2>&1 || die "cargo not found: the Rust toolchain is required"

# Python packages from PyPI, in a virtualenv of the project's own (the tests find it at
# target/py/bin/python3, or at $PROMGATE_PYTHON).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY_ENV="$ROOT/target/py"
PY_PKGS=(prometheus_client==0.21.1 aiosmtpd==1.4.6)
if ! "$PY_ENV/bin/python3" -c 'import prometheus_client, aiosmtpd' >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 || die "python3 not found (needed for the Python client and SMTP tests)"
  note "creating $PY_ENV with ${PY_PKGS[*]} (pip)"
  python3 -m venv "$PY_ENV" || die "python3 -m venv $PY_ENV failed (install python3-venv)"
  "$PY_ENV/bin/python3" -m pip install -q --disable-pip-version-check "${PY_PKGS[@]}" ||
    die "pip install ${PY_PKGS[*]} failed"
  "$PY_ENV/bin/python3" -c 'import prometheus_client, aiosmtpd' || die "python packages do not import"
fi
am_version=$(/usr/bin/prometheus-alertmanager --version 2>&1 | head -n1) ||
  die "/usr/bin/prometheus-alertmanager does not run: $am_version"
[ -x /usr/bin/amtool ] || die "/usr/bin/amtool missing (package prometheus-alertmanager)"
pgw_version=$(/usr/bin/prometheus-pushgateway --version 2>&1 | head -n1) ||
  die "/usr/bin/prometheus-pushgateway does not run: $pgw_version"

note "ok: $prom_version; $am_version; $pgw_version; victoria-metrics $(dpkg-query -W -f='${Version}' victoria-metrics)"
