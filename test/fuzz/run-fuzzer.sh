#!/usr/bin/env bash
# Runs a libFuzzer target the way ctest needs it.
#
#   run-fuzzer.sh fuzz BINARY SECONDS ARTIFACT_DIR GLOB SEED_DIR...
#     Fuzzes for SECONDS, starting from the files matching GLOB under the
#     SEED_DIRs (copied into a temporary, writable corpus: the fuzzer adds
#     to its first corpus directory, and the sources must stay untouched).
#     Fails on any finding; the input that triggered it is left in
#     ARTIFACT_DIR (crash-*, timeout-*, oom-*) to be kept under
#     test/fuzz/regressions/<target>/ once fixed.
#   run-fuzzer.sh replay BINARY DIR
#     Runs every file in DIR through the target once (the regression test).
#
# ASAN_OPTIONS: detect_leaks=0 because the targets keep compiled layers and
# MLIR's uniqued storage for the process lifetime; allow_user_poisoning=0
# because Debian's libMLIR is not instrumented but the headers that poison
# BumpPtrAllocator memory are (see scripts/sanitize.sh).
set -euo pipefail
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allow_user_poisoning=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mode=$1
binary=$2
case "$mode" in
fuzz)
  seconds=$3 artifacts=$4 glob=$5
  shift 5
  corpus=$(mktemp -d)
  trap 'rm -rf "$corpus"' EXIT
  n=0
  for dir in "$@"; do
    while IFS= read -r -d '' f; do
      n=$((n + 1))
      cp "$f" "$corpus/seed-$n-$(basename "$f")"
    done < <(find "$dir" -type f -name "$glob" -print0)
  done
  mkdir -p "$artifacts"
  echo "fuzzing $(basename "$binary") for ${seconds}s from $n seed files"
  # -timeout: one input taking longer than this is a finding (a hang).
  # Coverage-guided runs print a status line per new coverage; keep the log
  # short by printing only the final statistics.
  "$binary" "$corpus" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=6144 \
    -max_len=8192 -len_control=0 -artifact_prefix="$artifacts/" -print_final_stats=1 \
    -close_fd_mask=1 2>&1 | grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)|^\s+NEW_FUNC' || {
    rc=${PIPESTATUS[0]}
    echo "FINDING: $(basename "$binary") exited with $rc; inputs in $artifacts:" >&2
    ls -l "$artifacts" >&2
    exit 1
  }
  ;;
replay)
  dir=$3
  mapfile -d '' files < <(find "$dir" -type f ! -name 'README*' -print0 | sort -z)
  if [ ${#files[@]} -eq 0 ]; then
    echo "no regression inputs in $dir"
    exit 0
  fi
  "$binary" "${files[@]}"
  ;;
*)
  echo "usage: $0 fuzz|replay ..." >&2
  exit 2
  ;;
esac
