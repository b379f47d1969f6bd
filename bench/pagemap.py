"""Where a worker's anonymous memory comes from, page by page (root: /proc/PID/pagemap).

    python3 bench/pagemap.py MASTER_PID WORKER_PID OTHER_WORKER_PID

For each resident page of the worker's heap and anonymous mappings, whether the same physical
page is also mapped by the master and the other worker (the import image, shared three ways), by
the other worker only (a page the master has written to since the fork), or by no one else (the
worker's own: copied on write or allocated since the fork). The PSS of the first kind is a third
of a page, of the second a half, of the last a whole page.
"""
from __future__ import annotations

import collections
import struct
import sys

PRESENT = 1 << 63
PFN = (1 << 55) - 1


def anon_regions(pid: int):
    """``(start address, mapping name, pagemap entries)`` of each heap or anonymous mapping of
    ``pid``: 8 bytes per page, little-endian, bit 63 set when the page is resident."""
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap, open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            name = parts[5] if len(parts) > 5 else "[anon]"
            if name in ("[anon]", "[heap]"):
                pagemap.seek(start // 4096 * 8)
                yield start, name, pagemap.read((end - start) // 4096 * 8)


def frames(pid: int) -> dict[int, tuple[int, str]]:
    """Virtual address -> (physical frame, mapping name) of ``pid``'s resident anonymous pages."""
    out = {}
    for start, name, data in anon_regions(pid):
        for i, (entry,) in enumerate(struct.iter_unpack("<Q", data)):
            if entry & PRESENT and entry & PFN:
                out[start + i * 4096] = (entry & PFN, name)
    return out


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__.split("\n\n")[1])
    master, worker, other = (frames(int(p)) for p in sys.argv[1:])
    in_master = {f for f, _ in master.values()}
    in_other = {f for f, _ in other.values()}
    kinds = collections.Counter()
    for frame, name in worker.values():
        if frame in in_master and frame in in_other:
            kind = "shared with the master and the other worker"
        elif frame in in_other:
            kind = "shared with the other worker only"
        elif frame in in_master:
            kind = "shared with the master only"
        else:
            kind = "the worker's own"
        kinds[kind, name] += 1
    pss = 0.0
    for (kind, name), pages in sorted(kinds.items()):
        share = {"shared with the master and the other worker": 3}.get(kind, 1 if "own" in kind else 2)
        pss += pages * 4 / share
        print(f"{name:7} {kind:45} {pages * 4:7} KiB")
    print(f"PSS of these pages: {pss:.0f} KiB")


if __name__ == "__main__":
    main()
