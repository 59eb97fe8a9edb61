#!/usr/bin/env bash
# Usage: scripts/pytest_tier.sh NAME [PYTEST ARGS...]  run one test tier, junit report in test-artifacts/
#        scripts/pytest_tier.sh --total                print the totals of the tiers reported there
# pytest exits 5 when it selects no test: a tier with no tests yet is not a failure, so that
# code becomes 0 with a line saying so. Every other non-zero exit code is passed on.
set -uo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python

if [[ ${1:-} == --total ]]; then
  exec "$python" - <<'PY'
import glob
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for path in sorted(glob.glob("test-artifacts/junit-*.xml")):
    for suite in ET.parse(path).getroot().iter("testsuite"):
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        left_out = int(suite.get("skipped", 0))
        passed += int(suite.get("tests", 0)) - bad - left_out
        failed += bad
        skipped += left_out
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
PY
fi

name=${1:?usage: scripts/pytest_tier.sh NAME [PYTEST ARGS...]}
shift
echo "=== $name tier ==="
"$python" -m pytest -q -p no:cacheprovider --junitxml="test-artifacts/junit-$name.xml" "$@"
code=$?
if ((code == 5)); then
  echo "$name tier: no tests in this tier yet"
  exit 0
fi
exit "$code"
