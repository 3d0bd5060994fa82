#!/usr/bin/env bash
# Makes sure a benchmark's anchors and load generators are installed before it runs, so a RESULT
# line never says NA for an anchor apt-get could have installed.
#
#   bash bench/anchors.sh AREA [AREA...]      (reads bench/packages/AREA.txt)
#
# As root: installs the missing Debian packages (apt-get update once, then one install).
# Otherwise: prints the apt-get line to run and exits 2, before anything is measured.
# LANHA_NO_APT=1 turns installing off (the line is printed and the bench stops).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || { echo "usage: bash bench/anchors.sh AREA [AREA...]  (AREA: a file in bench/packages/ without .txt)" >&2; exit 2; }

wanted=()
for area in "$@"; do
  list="$here/packages/$area.txt"
  [ -f "$list" ] || { echo "bench/anchors.sh: no package list $list" >&2; exit 2; }
  while IFS= read -r line; do
    line=${line%%#*}; line=$(echo "$line" | xargs)
    [ -n "$line" ] && wanted+=("$line")
  done < "$list"
done

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || [ "${LANHA_NO_APT:-}" = 1 ]; then
  echo "this benchmark compares against packages that are not installed; as root run:" >&2
  echo "  $line" >&2
  exit 2
fi
echo "installing the benchmark's anchors: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null || echo "apt-get update failed; trying the install anyway" >&2
# Packages that ship servers (kea, nsd, tftpd-hpa, ...) may try to start them; the benches start
# their own instances with their own configs, in namespaces or on high loopback ports.
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
