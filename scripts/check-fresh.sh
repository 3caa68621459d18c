#!/usr/bin/env bash
# Runs the README's two commands (scripts/demo.sh, scripts/test.sh) inside a
# fresh minimal Debian 12 root, as a new user on a new machine would: the
# only proof that scripts/setup.sh installs everything the project needs
# (the machines sessions and CI run on already have packages installed by
# hand, so a green CI does not prove it).
#
#   bash scripts/check-fresh.sh              # both commands
#   bash scripts/check-fresh.sh demo         # only the demo command
#   MOE_SKIP_SANITIZED=1 bash scripts/check-fresh.sh test   # quick test run
#
# The base root (debootstrap --variant=minbase bookworm, from the host's own
# apt sources) is made once and cached in $MOE_FRESH_CACHE (default
# /var/cache/moe-fresh/base); every run copies it to a new scratch root, so
# each command starts from nothing installed. The project goes in with
# `git archive HEAD` (what is committed, as a fresh clone would have it).
# Needs root (debootstrap, chroot, mounts); installs debootstrap if missing.
# Prints how long each command took; exits non-zero if either fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${MOE_FRESH_CACHE:-/var/cache/moe-fresh}
BASE=$CACHE/base
WHICH=${1:-all}
case "$WHICH" in all|demo|test) ;; *) echo "usage: $0 [all|demo|test]" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "check-fresh: must run as root (debootstrap, chroot)" >&2; exit 2; }

# The host's first Debian mirror: the fresh root uses the same sources.
host_mirror() {
  local uri
  uri=$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        grep -m1 -E 'debian/?( |$)' | sed -E 's/^URIs: *//; s/^deb (\[[^]]*\] )?//; s/ .*//')
  echo "${uri:-http://deb.debian.org/debian}"
}

make_base() {
  [ -f "$BASE/.complete" ] && return
  command -v debootstrap >/dev/null || { apt-get update -qq; apt-get install -y -qq debootstrap >/dev/null; }
  rm -rf "$BASE"; mkdir -p "$BASE"
  echo "check-fresh: debootstrap --variant=minbase bookworm from $(host_mirror) (cached in $BASE)"
  debootstrap --variant=minbase bookworm "$BASE" "$(host_mirror)" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE/debootstrap.log"; exit 1; }
  # The host's apt sources, so the root gets the same packages (LLVM 22
  # included) as the host.
  rm -f "$BASE/etc/apt/sources.list"
  mkdir -p "$BASE/etc/apt/sources.list.d"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && cp "$f" "$BASE$f"
  done
  cp /etc/resolv.conf "$BASE/etc/resolv.conf" 2>/dev/null || true
  touch "$BASE/.complete"
}

ROOTFS=""
cleanup() {
  [ -n "$ROOTFS" ] || return 0
  for m in dev/pts dev proc sys; do umount -l "$ROOTFS/$m" 2>/dev/null || true; done
  rm -rf "$ROOTFS"
}
trap cleanup EXIT

# A new root copied from the base, with the project at /root/moe.
fresh_root() {
  cleanup
  ROOTFS=$(mktemp -d "$CACHE/root.XXXXXX")
  cp -a "$BASE/." "$ROOTFS/"
  mkdir -p "$ROOTFS/root/moe"
  git -C "$ROOT" archive HEAD | tar -x -C "$ROOTFS/root/moe"
  mount -t proc proc "$ROOTFS/proc"
  mount --rbind /dev "$ROOTFS/dev"
  mount -t sysfs sys "$ROOTFS/sys"
}

# Runs one README command in its own fresh root; prints its time.
run_command() {
  local name=$1 script=$2 start rc=0
  fresh_root
  echo "== check-fresh: '$script' in a fresh Debian 12 root"
  start=$(date +%s)
  chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 MOE_SKIP_SANITIZED="${MOE_SKIP_SANITIZED:-0}" \
    bash -c "cd /root/moe && $script" >"$CACHE/$name.log" 2>&1 || rc=$?
  tail -n 25 "$CACHE/$name.log"
  TIMES+=("$name: $script -> exit $rc in $(( $(date +%s) - start )) s")
  [ "$rc" -eq 0 ] || FAILED=1
}

mkdir -p "$CACHE"
make_base
TIMES=(); FAILED=0
[ "$WHICH" = test ] || run_command demo "bash scripts/demo.sh"
[ "$WHICH" = demo ] || run_command test "bash scripts/test.sh"
echo "== check-fresh summary (full logs in $CACHE/*.log)"
printf '  %s\n' "${TIMES[@]}"
exit $FAILED
