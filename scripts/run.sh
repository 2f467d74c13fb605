#!/usr/bin/env bash
# The README's run command. Until tappa-server lands (issue: the server) it
# builds tappactl, checks the example ruleset, evaluates a sample expression
# and ranks the next best actions for a sample contact of the worked journey.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
BUILD="${TAPPA_BUILD_DIR:-$ROOT/build}"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "${TAPPA_JOBS:-2}" --target tappactl
TAPPACTL="$BUILD/tools/tappactl/tappactl"

echo "== tappactl rules check rules/examples/retail.yaml"
"$TAPPACTL" rules check rules/examples/retail.yaml

echo
echo "== tappactl expr"
echo '{"expr": "contact.counts.product_view_7d >= 3 && channel in [\"web\", \"app\"]", "bindings": {"contact": {"mapValue": {"entries": [{"key": {"stringValue": "counts"}, "value": {"mapValue": {"entries": [{"key": {"stringValue": "product_view_7d"}, "value": {"int64Value": "4"}}]}}}]}}, "channel": {"stringValue": "web"}}}' \
  | tee /dev/stderr | "$TAPPACTL" expr

echo
echo "== tappactl rules eval (a contact who came from Instagram and read reviews)"
echo '{"contact": {"id": "ada", "phase": "consideration", "counts": {"product_view_7d": 3}, "attrs": {"country": "IT"}}, "context": {"referrer": "instagram"}}' \
  | "$TAPPACTL" rules eval rules/examples/retail.yaml --placement web.home_hero \
      --limit 3 --explain
