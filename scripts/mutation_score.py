"""The mutation score of each module ``make mutation`` mutates, from mutmut's results.

mutmut 3 keeps one ``mutants/<path>.meta`` per mutated file: the exit code of the tests
for each of its mutants (1 or 3: killed; 0: survived; others: see ``mutmut.stats``).
The score is killed / (killed + survived + timeouts + suspicious): a mutant no selected
test reaches ("no tests") counts as a survivor too, so no module scores by being
untested. Mutants not run yet (``make mutation MODULE=...`` runs one module at a time)
are counted apart, and make the result incomplete. Exit status 1 if a module is below
``THRESHOLD`` or incomplete.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

THRESHOLD = 0.90
KILLED = {1, 3, 37}  # 37: caught by the type check


def main() -> int:
    metas = sorted(Path("mutants").rglob("*.py.meta"))
    if not metas:
        print("no mutmut results under mutants/: run `mutmut run` first", file=sys.stderr)
        return 2
    failing = False
    total_killed = total = 0
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        checked = [code for code in codes.values() if code is not None and code not in (2, 34)]
        killed = sum(code in KILLED for code in checked)
        survivors = sorted(
            name for name, code in codes.items() if code is not None and code not in KILLED
        )
        score = killed / len(checked) if checked else 1.0
        total_killed, total = total_killed + killed, total + len(checked)
        module = str(meta.relative_to("mutants")).removesuffix(".meta")
        not_run = sum(code is None for code in codes.values())
        pending = f"  ({not_run} not run: incomplete)" if not_run else ""
        print(f"{module:40} {killed:4}/{len(checked):<4} killed  {score:6.1%}{pending}")
        for name in survivors:
            print(f"    survived: {name} (exit {codes[name]})")
        failing |= score < THRESHOLD or not_run > 0
    print(f"{'all':40} {total_killed:4}/{total:<4} killed  {total_killed / max(total, 1):6.1%}")
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
