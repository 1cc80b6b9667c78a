#!/usr/bin/env python3
"""Validates every line of a JSON Lines file against stallwatch's schema.

usage: validate-events.py SCHEMA EVENTS.jsonl
Prints 'valid: N events (kinds...)' and exits 0, or prints the first invalid
line with the validator's reasons and exits 1. An empty file is a failure:
a check over nothing proves nothing.
"""
import collections
import json
import sys

import jsonschema


def main() -> int:
    schema_path, events_path = sys.argv[1], sys.argv[2]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    kinds = collections.Counter()
    with open(events_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                event = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"line {number}: not JSON: {e}: {line[:200]!r}")
                return 1
            errors = sorted(validator.iter_errors(event), key=lambda e: list(e.path))
            if errors:
                print(f"line {number}: invalid {event.get('event')!r} event:")
                for e in errors[:5]:
                    print(f"  at {'/'.join(map(str, e.path)) or '(top)'}: {e.message}")
                return 1
            kinds[event["event"]] += 1
    if not kinds:
        print("no event to validate")
        return 1
    print(f"valid: {sum(kinds.values())} events ({', '.join(f'{k}={n}' for k, n in sorted(kinds.items()))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
