#!/usr/bin/env python3
"""bench/run's table: min / median / max of every (comparison, metric) that the bench scripts
recorded (bench/lib.sh bench_record, one JSON line each), the target checked on the median, then
the notes. Usage: bench/table.py RESULTS.jsonl HEADER.md > table.md"""
import json
import statistics
import sys


def number(value):
    if value == int(value) and abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.2f}"


def met(target, median):
    """'<=0.6' or '>=3' against the median; '' when there is no target."""
    if not target:
        return ""
    for op, check in (("<=", lambda a, b: a <= b), (">=", lambda a, b: a >= b), ("<", lambda a, b: a < b), (">", lambda a, b: a > b)):
        if target.startswith(op):
            return "**yes**" if check(median, float(target[len(op):])) else "**no**"
    raise SystemExit(f"bench/table.py: target {target!r} is not <=X, >=X, <X or >X")


def main():
    results, header = sys.argv[1], sys.argv[2]
    rows, order, notes = {}, [], []
    with open(results) as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            if "note" in record:
                notes.append(record["note"])
                continue
            key = (record["comparison"], record["metric"])
            if key not in rows:
                rows[key] = {"values": [], "target": record.get("target", ""), "unit": record.get("unit", "")}
                order.append(key)
            rows[key]["values"].append(record["value"])
    with open(header) as f:
        print(f.read().rstrip())
    print()
    print("| comparison | metric | runs | min | median | max | target | met? |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for key in order:
        row = rows[key]
        values = sorted(row["values"])
        median = statistics.median(values)
        unit = f" {row['unit']}" if row["unit"] else ""
        target = f"{row['target']}{unit}" if row["target"] else ""
        print(f"| {key[0]} | {key[1]} | {len(values)} | {number(values[0])}{unit} | {number(median)}{unit} "
              f"| {number(values[-1])}{unit} | {target.replace('<=', '≤ ').replace('>=', '≥ ')} | {met(row['target'], median)} |")
    if notes:
        print()
        for note in notes:
            print(f"- {note}")


if __name__ == "__main__":
    main()
