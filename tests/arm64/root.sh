#!/usr/bin/env bash
# tests/arm64/root.sh: run fmnist-edge's TensorFlow-free ("edge") code and tests in a Debian arm64 root
# (bookworm = Raspberry Pi OS Bookworm's base, Python 3.11; trixie, Python 3.13) on an x86-64
# Debian host, through qemu-user and binfmt_misc.
#
# Usage:
#   root.sh [--suite bookworm|trixie] COMMAND [ARGS]
#
#   setup                  host packages, binfmt, the cached root, nothing else
#   install WHEEL          setup + aarch64 wheels of WHEEL's dependencies (cached) + the root's venv
#                          with those and WHEEL installed
#   run [--bind DIR[:DST]]... [--cwd DIR] -- CMD [ARGS]
#                          run CMD inside the root, the venv first on PATH; DIR is bind-mounted at
#                          DST (default: the same path) so results can be read on the host
#   all WHEEL [run options] -- CMD [ARGS]
#                          install WHEEL, then run CMD: what `make test-arm64` needs
#   status                 what is cached, and how big
#
# Environment (all optional):
#   ARM64_SUITE            bookworm (default) or trixie; --suite wins
#   ARM64_CACHE            cache root, default /var/cache/fmnist-edge
#   ARM64_ROOT             the root, default $ARM64_CACHE/roots/$SUITE-arm64
#   ARM64_WHEELS           aarch64 wheel folder, default $ARM64_CACHE/wheels/cpXY-aarch64
#   ARM64_MIRROR           Debian mirror, default http://deb.debian.org/debian
#   ARM64_DEBS             Debian packages the root needs (default below)
#   ARM64_EXTRA_REQS       pip requirements beyond WHEEL's own, default "pytest>=8,<10"
#   ARM64_CONSTRAINTS      a pip constraints file for both download and install, e.g. the host
#                          venv's `pip freeze`, so x86 and arm64 run the same versions
#   ARM64_QEMU_CPU         emulated core, default cortex-a76 (Pi 5); cortex-a72 (Pi 4); max
#   ARM64_PASS_ENV         host variables passed into the root (the rest is dropped: the host's
#                          PIP_*, PYTHON* and VIRTUAL_ENV would only confuse the root's Python)
#   ARM64_HOST_PYTHON      Python whose pip downloads the aarch64 wheels, default /usr/bin/python3
#
# Example (`make test-arm64` does this through tests/arm64/run-suite.sh):
#   make wheel && mkdir -p /tmp/t && cp -r tests /tmp/t/
#   tests/arm64/root.sh all dist/*.whl --bind /tmp/t --cwd /tmp/t -- python -m pytest -q tests/test_preprocess.py
#
# Safety: every mount is made in a private mount namespace (unshare) whose processes all die with
# this script (also by SIGKILL), so no mount can outlive a run; a trap unmounts everything on exit
# as well, and the host is checked for leftovers afterwards. Without unshare the trap does the work.
set -euo pipefail

SELF=$(readlink -f "$0")
log() { printf '[arm64-root %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- configuration
SUITE=${ARM64_SUITE:-bookworm}
if [ "${1:-}" = --suite ]; then SUITE=${2:?--suite needs a value}; shift 2; fi

# What each suite ships: its Python (for wheel tags) and its glibc (the newest manylinux tag allowed).
case $SUITE in
  bookworm) PYVER=3.11 GLIBC_MINOR=36 ;;
  trixie)   PYVER=3.13 GLIBC_MINOR=41 ;;
  *) die "unknown suite '$SUITE' (bookworm or trixie)" ;;
esac
ABI=cp${PYVER/./}

CACHE=${ARM64_CACHE:-/var/cache/fmnist-edge}
ROOT=${ARM64_ROOT:-$CACHE/roots/$SUITE-arm64}
WHEELS=${ARM64_WHEELS:-$CACHE/wheels/$ABI-aarch64}
DEBCACHE=$CACHE/debs/$SUITE-arm64
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
# python3-venv brings ensurepip; the tests read the data set from /usr/share/datasets/fashion-mnist.
DEBS=${ARM64_DEBS:-python3 python3-venv dataset-fashion-mnist}
EXTRA_REQS=${ARM64_EXTRA_REQS:-pytest>=8,<10}
CONSTRAINTS=${ARM64_CONSTRAINTS:-}
# The emulated core: the Raspberry Pi 5's by default (cortex-a72 is the Pi 4's); qemu's own default,
# "max", has SVE/SME that no Pi has, so it would exercise kernels a Pi never runs.
QEMU_CPU_MODEL=${ARM64_QEMU_CPU:-cortex-a76}
PASS_ENV=${ARM64_PASS_ENV:-CI TERM COLUMNS PYTEST_ADDOPTS OMP_NUM_THREADS FMNIST_EDGE_PHOTOS}
HOST_PYTHON=${ARM64_HOST_PYTHON:-/usr/bin/python3}
VENV=/opt/fmnist-venv          # inside the root
MARKER=$ROOT/.fmnist-edge-root # written last: a root without it is unfinished

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"

# Time a stage and say so: the report and CI logs read these lines.
stage() {
  local name=$1; shift
  local t0=$SECONDS
  log "stage $name ..."
  "$@"
  log "stage $name done in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- mounts
# Mount points currently mounted at or below the root, deepest first (for unmounting).
mounts_below() {
  awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

# Leftovers from a run that had no mount namespace and was killed before its trap ran.
umount_leftovers() {
  local m
  for m in $(mounts_below); do
    log "unmounting leftover $m"
    umount -R "$m" 2>/dev/null || umount -l "$m"
  done
}

# The inside of `run`: executed by this script again, inside `unshare`, as
#   arm64-root.sh __in-namespace CWD BINDS -- CMD...
# It mounts what a Linux userland needs, chroots, and unmounts on any exit.
in_namespace() {
  local cwd=$1 binds=$2; shift 3
  MOUNTED=()
  teardown() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
      umount -R "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" 2>/dev/null || true
    done
  }
  trap teardown EXIT
  mnt() { local target=${*: -1}; mount "$@"; MOUNTED+=("$target"); }

  mnt -t proc proc "$ROOT/proc"
  # The CPU: qemu-user shows the guest the host's x86 /proc/cpuinfo. With /sys mounted as well, the
  # cpuinfo library inside onnxruntime and LiteRT (XNNPACK) segfaults on it at load; without /sys
  # it just gives up and prints "Error in cpuinfo". So for a known Arm core the guest gets an
  # aarch64 /proc/cpuinfo describing it (over /proc/cpuinfo, in this namespace only) and /sys;
  # for any other QEMU_CPU (e.g. max) it gets no /sys.
  local cpuinfo; cpuinfo=$(fake_cpuinfo "$QEMU_CPU_MODEL")
  if [ -n "$cpuinfo" ]; then
    printf '%s' "$cpuinfo" > "$ROOT/run/fmnist-edge-cpuinfo"
    mnt --bind "$ROOT/run/fmnist-edge-cpuinfo" "$ROOT/proc/cpuinfo"
    mnt -t sysfs -o ro sysfs "$ROOT/sys"
  fi
  mnt --rbind /dev "$ROOT/dev"           # /dev/null, /dev/shm (multiprocessing), /dev/pts
  mnt -t tmpfs -o mode=1777 tmpfs "$ROOT/tmp"   # a clean /tmp per run; nothing piles up in the cache
  # apt inside the root, if ever needed, resolves names as the host does.
  if [ -f "$ROOT/etc/resolv.conf" ] && [ ! -L "$ROOT/etc/resolv.conf" ]; then
    mnt --bind /etc/resolv.conf "$ROOT/etc/resolv.conf"
  fi
  local spec src dst
  for spec in $binds; do
    src=${spec%%:*}; dst=${spec#*:}; [ "$dst" = "$spec" ] && dst=$src
    if [ -d "$src" ]; then mkdir -p "$ROOT$dst"; else mkdir -p "$(dirname "$ROOT$dst")"; touch "$ROOT$dst"; fi
    mnt --bind "$src" "$ROOT$dst"
  done

  # A clean environment: only what Python, pip and pytest inside need, plus ARM64_PASS_ENV.
  local envs=(QEMU_CPU="$QEMU_CPU_MODEL" HOME=/root LANG=C.UTF-8 PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
              PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1)
  [ -x "$ROOT$VENV/bin/python" ] && envs+=(VIRTUAL_ENV="$VENV")
  local v
  for v in $PASS_ENV; do [ -n "${!v+x}" ] && envs+=("$v=${!v}"); done
  # In the background so that a signal runs the traps at once (bash delays them until a foreground
  # command ends); stdin is handed over explicitly (a background job would get /dev/null).
  local rc=0
  exec 3<&0
  chroot "$ROOT" /usr/bin/env -i "${envs[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$cwd" "$@" <&3 3<&- 9>&- &
  CHILD=$!
  trap 'kill -TERM $CHILD 2>/dev/null; exit 143' TERM HUP
  trap 'kill -INT $CHILD 2>/dev/null; exit 130' INT
  wait $CHILD || rc=$?
  exit $rc
}

# /proc/cpuinfo of a Raspberry Pi's core, one entry per host CPU (the count /sys shows), as an
# arm64 kernel prints it; empty for a core not listed here.
fake_cpuinfo() {
  local features variant part revision i
  case $1 in
    cortex-a72) features="fp asimd evtstrm crc32 cpuid"; variant=0x0; part=0xd08; revision=3 ;;  # Pi 4
    cortex-a76) features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
                variant=0x4; part=0xd0b; revision=1 ;;  # Pi 5
    *) return 0 ;;
  esac
  for ((i = 0; i < $(nproc --all); i++)); do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
      "$i" "$features" "$variant" "$part" "$revision"
  done
}

# run_in_root [--bind SPEC]... [--cwd DIR] -- CMD...
run_in_root() {
  local binds="" cwd=/
  while [ $# -gt 0 ]; do
    case $1 in
      --bind) [ -e "${2%%:*}" ] || die "--bind: ${2%%:*} does not exist"
              binds="$binds $(readlink -f "${2%%:*}")${2#"${2%%:*}"}"; shift 2 ;;
      --cwd)  cwd=$2; shift 2 ;;
      --)     shift; break ;;
      *)      break ;;
    esac
  done
  [ $# -gt 0 ] || die "run: no command given"
  [ -f "$MARKER" ] || die "no finished root at $ROOT: run setup first"
  umount_leftovers
  local rc=0
  if command -v unshare >/dev/null && unshare --mount --propagation private true 2>/dev/null; then
    # A private mount namespace and a PID namespace: mounts vanish, and so does any process the
    # command left running (a server, a hung child), when the command ends, however it ends.
    # unshare ignores SIGTERM/SIGINT while it waits; --pdeathsig KILL ends it (and, through
    # --kill-child, everything inside) when this script dies, even by SIGKILL or a CI timeout.
    ARM64_SUITE=$SUITE setpriv --pdeathsig KILL unshare --mount --propagation private --pid --fork --kill-child -- \
      "$SELF" __in-namespace "$cwd" "$binds" -- "$@" || rc=$?
  else
    log "unshare unavailable: mounting in the host's namespace, unmounted by a trap"
    # The same inside, in a subshell of this shell: a signal to this script is passed on to it, and
    # its traps unmount before it exits.
    exec 4<&0
    ( in_namespace "$cwd" "$binds" -- "$@" ) <&4 4<&- &
    local sub=$! signalled=""
    # shellcheck disable=SC2064  # $sub is meant to be expanded now
    trap "signalled=1; kill -TERM $sub 2>/dev/null" TERM HUP INT
    while kill -0 "$sub" 2>/dev/null; do wait "$sub" && rc=0 || rc=$?; done
    trap - TERM HUP INT
    [ -z "$signalled" ] || { umount_leftovers; exit 143; }
  fi
  [ -z "$(mounts_below)" ] || { umount_leftovers; die "mounts were left below $ROOT (now removed)"; }
  return $rc
}

# ---------------------------------------------------------------- stages
ensure_host_packages() {
  local need=() p
  for p in qemu-user-static binfmt-support debootstrap; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  "$HOST_PYTHON" -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
  [ ${#need[@]} -eq 0 ] && { log "host packages present"; return; }
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

# The kernel must hand aarch64 ELF files to qemu. The F ("fix binary") flag makes the kernel open
# the emulator once, at registration, so it also works inside the chroot, where the emulator's
# path does not exist, and for every child process the tests spawn.
ensure_binfmt() {
  local dir=/proc/sys/fs/binfmt_misc entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
  if [ ! -e $dir/status ]; then
    mount -t binfmt_misc binfmt_misc $dir ||
      die "cannot mount binfmt_misc: aarch64 programs can then only be run one at a time as
      'qemu-aarch64-static -L ROOT ROOT/usr/bin/python3 ...', and the tests' subprocesses fail"
  fi
  [ "$(cat $dir/status)" = enabled ] || echo 1 > $dir/status
  if [ ! -e $entry ]; then
    update-binfmts --enable qemu-aarch64 2>/dev/null || true
  fi
  if [ ! -e $entry ]; then
    # update-binfmts refused (e.g. no /var/lib/binfmts entry): register by hand, same magic as
    # Debian's /usr/share/binfmts/qemu-aarch64, flags P (keep argv[0]) and F.
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:PF' > $dir/register
  fi
  [ "$(head -1 $entry)" = enabled ] || echo 1 > $entry
  grep -q '^flags:.*F' $entry ||
    die "qemu-aarch64 is registered without the F flag: run 'update-binfmts --disable qemu-aarch64' and retry"
  log "binfmt: $(tr '\n' ' ' < $entry | cut -c1-90)"
}

# Packages of DEBS missing from root $1 (read with the host's dpkg-query: no emulation needed).
missing_debs() {
  local p
  for p in $DEBS; do
    dpkg-query --admindir="$1/var/lib/dpkg" -W -f='${db:Status-Status}\n' "$p" 2>/dev/null |
      grep -qx installed || echo "$p"
  done
}

ensure_root() {
  mkdir -p "$(dirname "$ROOT")" "$DEBCACHE"
  if [ -f "$MARKER" ]; then
    local missing; missing=$(missing_debs "$ROOT" | tr '\n' ' ')
    if [ -n "${missing// }" ]; then
      log "root lacks: $missing; installing with apt inside the root"
      run_in_root -- sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing && apt-get clean"
    fi
    log "root ready: $ROOT ($(cat "$MARKER"))"
    return
  fi
  local partial=$ROOT.partial
  # An interrupted build cannot be resumed reliably: start it again (the .debs are cached).
  if [ -e "$partial" ]; then
    awk -v r="$partial" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/self/mounts &&
      die "something is mounted below $partial: unmount it before anything is deleted"
    rm -rf "$partial"
  fi
  local include; include=$(printf '%s,' $DEBS); include=${include%,}
  log "debootstrap $SUITE arm64 into $partial (second stage under qemu: minutes)"
  # debootstrap mounts /proc and /sys in the target itself: in its own mount namespace, those
  # mounts cannot outlive it either.
  unshare --mount --propagation private -- \
    debootstrap --arch=arm64 --variant=minbase --include="$include" \
      --cache-dir="$DEBCACHE" "$SUITE" "$partial" "$MIRROR" > "$CACHE/debootstrap-$SUITE.log" 2>&1 ||
    { tail -20 "$CACHE/debootstrap-$SUITE.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap-$SUITE.log)"; }
  rm -f "$partial"/var/cache/apt/archives/*.deb   # the same files are kept in $DEBCACHE
  [ -z "$(missing_debs "$partial")" ] || die "debootstrap finished without: $(missing_debs "$partial" | tr '\n' ' ')"
  echo "$SUITE arm64, $(chroot "$partial" /usr/bin/python3 -V), built $(date -u +%FT%TZ)" > "$partial/.fmnist-edge-root"
  mv "$partial" "$ROOT"
  log "root ready: $ROOT ($(cat "$MARKER"))"
}

# The pip requirements: WHEEL's own dependencies (Requires-Dist without an extra) + EXTRA_REQS.
requirements_of() {
  "$HOST_PYTHON" - "$1" <<'EOF'
import sys, zipfile
from email.parser import Parser
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(z.read(name).decode())
for req in meta.get_all("Requires-Dist") or []:
    if "extra ==" not in req.replace('extra==', 'extra =='):
        print(req)
EOF
  local r
  for r in $EXTRA_REQS; do echo "$r"; done
}

# aarch64 wheels, downloaded on the host: pip inside the root needs no network, and no aarch64
# package is ever built from source under emulation (--only-binary).
ensure_wheels() {
  local wheel=$1 reqs=$WHEELS/.requirements-$SUITE.txt key stamp
  mkdir -p "$WHEELS"
  requirements_of "$wheel" > "$reqs"
  # The key names this exact wheel set: requirements, constraints, Python and glibc.
  key=$( (cat "$reqs"; [ -z "$CONSTRAINTS" ] || cat "$CONSTRAINTS"; echo "$ABI $GLIBC_MINOR") | sha256sum | cut -c1-16)
  stamp=$WHEELS/.complete-$key
  if [ -f "$stamp" ]; then log "wheels cached in $WHEELS (key $key)"; WHEELS_KEY=$key; return; fi
  # pip does not widen manylinux_2_X tags by itself: list every glibc from 2.17 to the suite's.
  local plats=() m
  for ((m = GLIBC_MINOR; m >= 17; m--)); do plats+=(--platform "manylinux_2_${m}_aarch64"); done
  plats+=(--platform manylinux2014_aarch64)
  "$HOST_PYTHON" -m pip download -q --only-binary=:all: "${plats[@]}" --python-version "$PYVER" \
    --implementation cp --abi "$ABI" --abi abi3 --abi none -d "$WHEELS" -r "$reqs" \
    ${CONSTRAINTS:+-c "$CONSTRAINTS"}
  touch "$stamp"
  WHEELS_KEY=$key
}

# The venv inside the root: dependencies reinstalled only when the wheel set changed, the project
# wheel whenever its contents changed (a fresh checkout's wheel always differs: cheap, ~5 s).
ensure_venv() {
  local wheel; wheel=$(readlink -f "$1")
  local want_deps="$WHEELS_KEY" want_proj; want_proj=$(sha256sum "$wheel" | cut -c1-16)
  local have_deps="" have_proj=""
  [ -f "$ROOT$VENV/.deps" ] && have_deps=$(cat "$ROOT$VENV/.deps")
  [ -f "$ROOT$VENV/.project" ] && have_proj=$(cat "$ROOT$VENV/.project")
  local binds; binds="--bind $WHEELS:/mnt/wheels --bind $(dirname "$wheel"):/mnt/dist"
  local constraint=""
  if [ -n "$CONSTRAINTS" ]; then
    binds="$binds --bind $(readlink -f "$CONSTRAINTS"):/mnt/constraints.txt"; constraint="-c /mnt/constraints.txt"
  fi
  if [ "$have_deps" != "$want_deps" ]; then
    log "creating $VENV in the root with $(basename "$WHEELS")"
    rm -rf "${ROOT:?}$VENV"
    # shellcheck disable=SC2086
    run_in_root $binds -- sh -c "python3 -m venv $VENV &&
      $VENV/bin/pip install -q --no-index --find-links /mnt/wheels -r /mnt/wheels/.requirements-$SUITE.txt $constraint"
    echo "$want_deps" > "$ROOT$VENV/.deps"
    have_proj=""
  fi
  if [ "$have_proj" != "$want_proj" ]; then
    # shellcheck disable=SC2086
    run_in_root $binds -- "$VENV/bin/pip" install -q --no-index --no-deps --force-reinstall \
      "/mnt/dist/$(basename "$wheel")"
    echo "$want_proj" > "$ROOT$VENV/.project"
  else
    log "venv has this wheel already"
  fi
}

setup() {
  mkdir -p "$CACHE"
  stage host-packages ensure_host_packages
  stage binfmt ensure_binfmt
  stage root ensure_root
  # Proof that the kernel runs aarch64 binaries in the root, children included.
  run_in_root -- sh -c 'test "$(uname -m)" = aarch64 && /bin/true' ||
    die "aarch64 programs do not run in the root (binfmt?)"
}

install_wheel() {
  local wheel=${1:?install needs the project wheel}
  [ -f "$wheel" ] || die "no such wheel: $wheel"
  setup
  stage wheels ensure_wheels "$wheel"
  stage venv ensure_venv "$wheel"
}

status() {
  echo "suite $SUITE, root $ROOT: $( [ -f "$MARKER" ] && cat "$MARKER" || echo absent)"
  [ -f "$ROOT$VENV/.deps" ] && echo "venv $VENV: deps $(cat "$ROOT$VENV/.deps"), project $(cat "$ROOT$VENV/.project" 2>/dev/null)"
  echo "binfmt: $(head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || echo 'not registered')"
  echo "mounts below the root: $(mounts_below | wc -l)"
  du -sh "$CACHE"/* 2>/dev/null || true
}

# ---------------------------------------------------------------- main
cmd=${1:-}; [ $# -gt 0 ] && shift
# One invocation per suite at a time (two CI runs must not build one root or venv together). The
# re-executed inside of `run` is already covered by its parent's lock.
case $cmd in setup|install|run|all)
  mkdir -p "$CACHE"
  exec 9> "$CACHE/.lock-$SUITE"
  flock -n 9 || { log "waiting for another root.sh on $SUITE"; flock 9; } ;;
esac
case $cmd in
  __in-namespace) in_namespace "$@" ;;
  setup)   setup ;;
  install) install_wheel "$@" ;;
  run)     [ "${1:-}" = -- ] || [ "${1:-}" = --bind ] || [ "${1:-}" = --cwd ] || set -- -- "$@"
           t0=$SECONDS; rc=0; run_in_root "$@" || rc=$?
           log "run exited $rc after $((SECONDS - t0)) s"; exit $rc ;;
  all)     wheel=${1:?all needs the project wheel}; shift
           install_wheel "$wheel"
           t0=$SECONDS; rc=0; run_in_root "$@" || rc=$?
           log "run exited $rc after $((SECONDS - t0)) s"; exit $rc ;;
  status)  status ;;
  *)       sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; [ -z "$cmd" ] || [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2 ;;
esac
