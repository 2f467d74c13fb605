#!/usr/bin/env bash
# Builds Tappa and runs every test: unit, integration, end-to-end, lint and
# bounded fuzzing. This is the README's test command and what CI runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

JOBS="${TAPPA_JOBS:-2}"
BUILD="${TAPPA_BUILD_DIR:-$ROOT/build}"
FUZZ_BUILD="${TAPPA_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
FUZZ_SECONDS="${TAPPA_FUZZ_SECONDS:-10}"

# Protobuf API lint (buf, installed by setup.sh into .tools/).
if [[ -d proto/tappa && -x .tools/node_modules/.bin/buf ]]; then
  echo "== buf lint"
  .tools/node_modules/.bin/buf lint proto
fi

# Fuzzers: clang + libFuzzer in their own tree, each run for a bounded time
# over its committed seed corpus (copied, so runs never grow the repo).
echo "== fuzz (${FUZZ_SECONDS}s per target)"
cmake -S . -B "$FUZZ_BUILD" -G Ninja -DTAPPA_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$FUZZ_BUILD" -j "$JOBS"
for fuzzer in "$FUZZ_BUILD"/tests/fuzz/*_fuzzer; do
  [[ -x "$fuzzer" ]] || continue
  name="$(basename "$fuzzer")"
  work="$(mktemp -d)"
  cp -r "tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  dict=()
  [[ -f "tests/fuzz/$name.dict" ]] && dict=(-dict="tests/fuzz/$name.dict")
  echo "-- $name"
  "$fuzzer" "${dict[@]}" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=0 "$work" 2>"$work.log" \
    || { tail -50 "$work.log"; echo "fuzzer $name failed"; exit 1; }
  rm -rf "$work" "$work.log"
done

echo "== build"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$JOBS"

echo "== tests"
cd "$BUILD"
ctest --output-on-failure -j "$JOBS" --timeout 300
