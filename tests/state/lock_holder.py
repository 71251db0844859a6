"""Holds a state lock in a process of its own, for tests of locking across processes and crashes.

    python lock_holder.py SPEC_JSON

SPEC_JSON is {"kind": "local", "data_dir": …} or {"kind": "postgres", "url": …, "workspace": …}.
Prints the lock's LockInfo as one JSON line once it holds the lock, then waits: the line
`release` unlocks and exits 0; end of input exits without unlocking, leaving it to the OS or
the database server to notice that the holder is gone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def open_store(spec: dict):
    if spec["kind"] == "local":
        from skyplan.state.local import FileStateStore

        return FileStateStore(Path(spec["data_dir"]))
    from skyplan.state.postgres import PostgresStateStore

    return PostgresStateStore(spec["url"], spec["workspace"])


def main() -> int:
    store = open_store(json.loads(sys.argv[1]))
    info = store.lock("hold", timeout=0)
    print(info.model_dump_json(), flush=True)
    for line in sys.stdin:
        if line.strip() == "release":
            store.unlock(info.id)
            print("released", flush=True)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
