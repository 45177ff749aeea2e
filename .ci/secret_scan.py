"""Secret scan of every tracked file (detect-secrets), against the reviewed baseline.

A finding fails unless the baseline (``.secrets.baseline``: the test fixtures' fake keys and
placeholder URLs, reviewed) lists the same file, secret hash and type. Line numbers are ignored,
so editing a file that holds a known fake key does not need a new baseline; a new secret does.
``--update`` rewrites the baseline (review its diff before committing it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings

BASELINE = Path(".secrets.baseline")


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout
    return [f for f in out.decode().split("\0") if f and Path(f).is_file() and f != str(BASELINE)]


def main() -> int:
    with default_settings():
        found = SecretsCollection()
        found.scan_files(*tracked())
    if "--update" in sys.argv:
        BASELINE.write_text(json.dumps({"results": found.json()}, indent=2, sort_keys=True) + "\n")
        print(f"{BASELINE}: {sum(1 for _ in found)} reviewed findings written")
        return 0
    known = {
        (name, item["hashed_secret"], item["type"])
        for name, items in json.loads(BASELINE.read_text())["results"].items()
        for item in items
    }
    new = sorted(
        (name, secret.line_number, secret.type)
        for name, secret in found
        if (name, secret.secret_hash, secret.type) not in known
    )
    for name, line, kind in new:
        print(f"{name}:{line}: possible secret ({kind})")
    if new:
        print(
            f"{len(new)} possible secret(s) not in {BASELINE}: remove them (keys come from the "
            "environment or mounted files), or, for a test's fake key, run "
            "`make secret-baseline` and review the diff"
        )
        return 1
    print(f"secret scan: {len(tracked())} tracked files, no secret outside the reviewed baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
