#!/usr/bin/env bash
# `make lint`'s supply-chain check: pip-audit of the locked requirements (every group,
# uv.lock as exported by `uv export --locked`), against the first vulnerability source
# this machine reaches: PyPI's JSON API (per release, with its "vulnerabilities"), then
# OSV. Where neither answers (no network, or a registry mirror without that API), the
# audit is skipped with the reason printed, and exits 0. ENSU_AUDIT=off skips it too.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=(bash scripts/uv)
if [ "${ENSU_AUDIT:-on}" = off ]; then
  echo "pip-audit: skipped (ENSU_AUDIT=off)"
  exit 0
fi
requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT
"${UV[@]}" export --locked --all-groups --no-emit-workspace --no-hashes \
  --format requirements-txt --quiet > "$requirements"
# A pinned release of the lock, to ask each source about.
probe=$(grep -m1 -oE '^[A-Za-z0-9_.-]+==[^ ;]+' "$requirements")
service=$("${UV[@]}" run --locked --no-sync python - "$probe" <<'PY'
import json
import sys
import urllib.request

name, version = sys.argv[1].split("==")
reasons = []
try:
    url = f"https://pypi.org/pypi/{name}/{version}/json"
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - a fixed https URL
        if "vulnerabilities" in json.load(answer):
            print("pypi")
            sys.exit(0)
    reasons.append("PyPI's JSON API has no vulnerability data")
except Exception as error:  # noqa: BLE001 - any failure means: not reachable
    reasons.append(f"PyPI's JSON API: {error}")
query = json.dumps({"package": {"name": name, "ecosystem": "PyPI"}, "version": version})
try:
    request = urllib.request.Request("https://api.osv.dev/v1/query", data=query.encode())
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - a fixed https URL
        print("osv")
        sys.exit(0)
except Exception as error:  # noqa: BLE001
    reasons.append(f"OSV: {error}")
print("none: " + "; ".join(reasons))
PY
)
if [ "${service%%:*}" = none ]; then
  echo "pip-audit: skipped, no vulnerability data reachable (${service#none: })"
  exit 0
fi
"${UV[@]}" run --locked --no-sync pip-audit --disable-pip --no-deps --strict \
  --vulnerability-service "$service" --progress-spinner off -r "$requirements"
