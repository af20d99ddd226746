#!/usr/bin/env python3
"""Scrapes a Prometheus endpoint and parses it with the official Python client's parser.

Usage: scrape-metrics.py URL
Prints one JSON document: {"status": 200, "content_type": "...", "samples": [{"name", "labels", "value"}]}.
A body that is not valid Prometheus text format exits 3 with the parser's error on stderr;
an HTTP error status is reported in "status" with no samples.
"""
import json
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
        status, content_type, body = response.status, response.headers.get("Content-Type"), response.read().decode("utf-8")
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "content_type": error.headers.get("Content-Type"), "samples": []}))
    sys.exit(0)

try:
    families = list(text_string_to_metric_families(body))
except Exception as error:  # the parser raises ValueError (and others) on malformed input
    print(f"not Prometheus text format: {error}\n{body[:2000]}", file=sys.stderr)
    sys.exit(3)

samples = [
    {"name": sample.name, "labels": sample.labels, "value": sample.value, "type": family.type, "help": family.documentation}
    for family in families
    for sample in family.samples
]
print(json.dumps({"status": status, "content_type": content_type, "samples": samples}))
