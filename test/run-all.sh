#!/usr/bin/env bash
# The whole test suite: installs what the tests need (npm packages; Debian client packages when
# root), builds, runs every test file with node-tap, and ends with one line
# "N passed, N failed, N skipped". Exit status: non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# Debian packages: install the missing ones when we can (root + apt-get), never otherwise.
mapfile -t wanted < <(cat test/debian-packages/*.txt | sed -e "s/#.*//" -e "/^[[:space:]]*$/d" | sort -u)
missing=()
for p in "${wanted[@]}"; do
  p=$(echo "$p" | xargs)
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${LANHA_NO_APT:-}" != 1 ]; then
    echo "installing Debian packages for the tests: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # An arm64 package (name:arm64, e.g. GRUB's arm64 EFI image for boot-aavmf) needs the architecture.
    if printf '%s\n' "${missing[@]}" | grep -q ':arm64$' && ! dpkg --print-foreign-architectures | grep -qx arm64; then
      dpkg --add-architecture arm64
    fi
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null || echo "apt-get update failed; trying the install anyway"
    if ! apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
      # One package apt cannot get must not stop the suite: the rest one by one, the tests of what
      # failed skip with their loud line.
      echo "*** installing them at once failed; one by one:"
      for p in "${missing[@]}"; do
        apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$p" >/dev/null 2>&1 || echo "*** could not install $p: the tests that need it will SKIP"
      done
    fi
    # Packages that ship servers may start them; the tests start their own instances.
  else
    echo "*** not root (or LANHA_NO_APT=1): these Debian packages are missing and the tests that need them will SKIP: ${missing[*]}"
  fi
fi

npm run --silent build

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  mapfile -t found < <(find dist -name '*.test.js' -not -path '*/node_modules/*' | sort)
  # tsc never deletes output: a test whose source was moved or deleted would run from a stale .js.
  for f in "${found[@]}"; do
    src="${f#dist/}"
    if [ -f "${src%.js}.ts" ]; then files+=("$f"); else echo "skipping stale $f (no ${src%.js}.ts)"; fi
  done
fi

# Every process the tests start inherits this mark (ip netns exec keeps the environment). A test
# file that tap kills at its timeout leaves its daemons and clients running; they are found by the
# mark once tap is done, named and ended by PID. (Namespaces are left alone: other runs may own them.)
LANHA_TEST_RUN="run-$$-$(date +%s%N)"
export LANHA_TEST_RUN

reap_leftovers() {
  local pids=() pid
  for env in /proc/[0-9]*/environ; do
    pid=${env#/proc/}; pid=${pid%/environ}
    [ "$pid" = "$$" ] && continue
    if grep -qzxF "LANHA_TEST_RUN=$LANHA_TEST_RUN" "$env" 2>/dev/null; then pids+=("$pid"); fi
  done
  if [ ${#pids[@]} -gt 0 ]; then
    echo "*** processes the tests started are still running after tap ended; stopping them:"
    for pid in "${pids[@]}"; do echo "    $pid $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-160)"; done
    kill -TERM "${pids[@]}" 2>/dev/null || true
    sleep 2
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
npx tap run --reporter=tap --jobs="${LANHA_TEST_JOBS:-2}" "${files[@]}" | tee "$out" | grep -E '^(not ok|ok [0-9]+ - )|^    not ok|SKIPPED|^# \{' || true
status=${PIPESTATUS[0]}
reap_leftovers

# A failed file's whole TAP block (assertion, expected/found, stack) goes to the log, so a CI failure
# can be read without a rerun.
if grep -qE '^not ok' "$out"; then
  echo "---- details of failed test files ----"
  awk '/^# Subtest: /{block=""; inblock=1} inblock{block=block $0 "\n"} /^(not )?ok [0-9]+ - /{ if ($1=="not") printf "%s", block; inblock=0 }' "$out"
  echo "---- end of details ----"
fi

# tap's closing summary line looks like: # { total: 43, pass: 41, fail: 1, skip: 1 }
summary=$(grep -E '^# \{ total' "$out" | tail -n 1 || true)
num() { echo "$summary" | grep -oE "$1: [0-9]+" | grep -oE '[0-9]+' || echo 0; }
pass=$(num pass); fail=$(num fail); skip=$(num skip)
if [ -z "$summary" ]; then fail=1; echo "tap printed no summary"; fi
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$status" -eq 0 ]
