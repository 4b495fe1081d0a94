#!/usr/bin/env python3
"""Fails when a ctest run skipped a test that tests/allowed_skips.txt does not allow.

Usage: check_skips.py CTEST_LOG ALLOWED_FILE. ctest lists skipped tests after "The following tests did not run:"
as "<number> - <name> (Skipped)". Each line of ALLOWED_FILE is a regular expression matched against the whole test
name, then "  # " and the reason; blank lines and lines starting with "#" are ignored.
"""
import re
import sys


def main():
    log_path, allowed_path = sys.argv[1], sys.argv[2]
    allowed = []
    with open(allowed_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pattern, _, reason = line.partition("  # ")
            if not reason.strip():
                sys.exit(f"{allowed_path}: every allowed skip needs a reason: {line}")
            allowed.append(re.compile(pattern.strip()))
    skipped = []
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"\s*\d+ - (.+?) \(Skipped\)\s*$", line)
            if m:
                skipped.append(m.group(1).strip())
    unexpected = [name for name in skipped if not any(p.fullmatch(name) for p in allowed)]
    print(f"skipped tests: {len(skipped)}, not allowed: {len(unexpected)}")
    for name in unexpected:
        print(f"  skipped, not allowed by {allowed_path}: {name}")
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
