#!/usr/bin/env python3
"""Prints the reliability suite's figures (issue #16) as one Markdown table.

Reads the JSON lines the tests append to $PGBACKD_RELIABILITY_LEDGER
(Tests/IntegrationTests/Reliability/Reliability.swift: ReliabilityFigures) and sums them per
area and scenario. "lost", "left over" and "missed" print a number only where every record of
that row measured it; otherwise "not measured". Usage: reliability-table.py LEDGER [TITLE]
"""
import json
import sys
from collections import OrderedDict


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    rows: "OrderedDict[tuple, dict]" = OrderedDict()
    try:
        with open(sys.argv[1], encoding="utf-8") as ledger:
            records = [json.loads(line) for line in ledger if line.strip()]
    except FileNotFoundError:
        records = []
    for r in sorted(records, key=lambda r: (r["area"], r["scenario"])):
        row = rows.setdefault((r["area"], r["scenario"]), {
            "faults": {}, "runs": 0, "kills": 0, "objects": 0, "rows": 0,
            "lost": 0, "leftOver": 0, "missed": 0, "unmeasured": set()})
        for kind, n in r.get("faults", {}).items():
            row["faults"][kind] = row["faults"].get(kind, 0) + n
        row["runs"] += r.get("runs", 0)
        row["kills"] += r.get("kills", 0)
        row["objects"] += r.get("objectsVerified", 0)
        row["rows"] += r.get("rowsVerified", 0)
        for key in ("lost", "leftOver", "missed"):
            if r.get(key) is None:
                row["unmeasured"].add(key)
            else:
                row[key] += r[key]

    def measured(row, key):
        return "not measured" if key in row["unmeasured"] else str(row[key])

    title = sys.argv[2] if len(sys.argv) > 2 else "Reliability figures"
    print(f"== {title}")
    print("| area | scenario | runs | kills | faults injected | objects verified | rows verified | lost | left over | missed |")
    print("|---|---|---:|---:|---|---:|---:|---|---|---|")
    totals = {"runs": 0, "kills": 0, "faults": 0, "objects": 0, "rows": 0}
    for (area, scenario), row in rows.items():
        faults = ", ".join(f"{k} {v}" for k, v in sorted(row["faults"].items())) or "-"
        print(f"| {area} | {scenario} | {row['runs']} | {row['kills']} | {faults} | {row['objects']} | "
              f"{row['rows']} | {measured(row, 'lost')} | {measured(row, 'leftOver')} | {measured(row, 'missed')} |")
        totals["runs"] += row["runs"]
        totals["kills"] += row["kills"]
        totals["faults"] += sum(row["faults"].values())
        totals["objects"] += row["objects"]
        totals["rows"] += row["rows"]
    print(f"| **total** | {len(rows)} scenarios | {totals['runs']} | {totals['kills']} | {totals['faults']} | "
          f"{totals['objects']} | {totals['rows']} | | | |")
    # Each total says where it was counted: "lost: 0" means nothing only where somebody looked.
    # "missed" (faults not detected, secrets found) is counted by the detection suites alone.
    for key, label in (("lost", "lost"), ("leftOver", "left over"), ("missed", "missed")):
        counted = [r for r in rows.values() if key not in r["unmeasured"]]
        faulted = [r for r in rows.values() if r["kills"] or r["faults"]]
        total = sum(r[key] for r in counted)
        uncounted = "" if key == "missed" else \
            f"; {sum(1 for r in faulted if key in r['unmeasured'])} with faults or kills did not count it"
        print(f"{label}: {total} (counted in {len(counted)} of {len(rows)} scenarios{uncounted})")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
