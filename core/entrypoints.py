"""Entry points of one group, found without importing ``importlib.metadata``.

``importlib.metadata`` pulls in about 70 modules (email, zipfile, csv, pathlib,
...): some 15 ms of every start and ~4 MB of heap that the master and every
worker would carry. The plugins are found the way it finds them: each
``*.dist-info`` / ``*.egg-info`` folder in each ``sys.path`` directory, in
order, the first distribution of a (normalized) name winning, then the
``[group]`` section of its ``entry_points.txt``. Anything this scan does not
cover (a zip on ``sys.path``, a finder with its own ``find_distributions``)
falls back to ``importlib.metadata`` itself.
"""
from __future__ import annotations

import os
import sys


class EntryPoint:
    """``name = module[:attr]`` from a distribution's ``entry_points.txt``."""

    __slots__ = ("name", "value", "dist_name", "dist_version")

    def __init__(self, name: str, value: str, dist_name: str, dist_version: str):
        self.name = name
        self.value = value
        self.dist_name = dist_name
        self.dist_version = dist_version

    def load(self):
        from importlib import import_module
        module, _, attr = self.value.split("[", 1)[0].partition(":")
        obj = import_module(module.strip())
        for part in attr.strip().split("."):
            if part:
                obj = getattr(obj, part)
        return obj


def find(group: str) -> list[EntryPoint]:
    """The entry points of ``group``, in ``importlib.metadata.entry_points`` order."""
    found = _scan(group)
    return found if found is not None else _from_metadata(group)


def _scan(group: str) -> list[EntryPoint] | None:
    from importlib.machinery import PathFinder
    for finder in sys.meta_path:
        if finder is not PathFinder and getattr(finder, "find_distributions", None) is not None:
            return None
    seen: set[str] = set()
    out: list[EntryPoint] = []
    for entry in sys.path:
        root = entry or "."
        try:
            children = os.listdir(root)
        except NotADirectoryError:
            return None                     # a zip or egg file: not ours to read
        except OSError:
            continue
        infos = [c for c in children if c.lower().endswith(".dist-info")]
        eggs = [c for c in children if c.lower().endswith(".egg-info")]
        for child in infos + eggs:
            path = os.path.join(root, child)
            key = _normalize(child.rpartition(".")[0].partition("-")[0])
            if key in seen or not os.path.isdir(path):
                continue
            seen.add(key)
            points = _read(os.path.join(path, "entry_points.txt"))
            if points is None:
                continue
            selected = list(_section(points, group))
            if not selected:
                continue
            name, version = _name_version(path, child)
            out.extend(EntryPoint(n, v, name, version) for n, v in selected)
    return out


def _normalize(name: str) -> str:
    """The key ``importlib.metadata`` deduplicates distributions by."""
    import re
    return re.sub(r"[-_.]+", "_", name).lower()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def _section(text: str, group: str):
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] == "#":
            continue
        if line[0] == "[" and line[-1] == "]":
            section = line[1:-1].strip()
            continue
        if section == group:
            name, sep, value = line.partition("=")
            if sep:
                yield name.strip(), value.strip()


def _name_version(path: str, child: str) -> tuple[str, str]:
    """Name and Version from the METADATA / PKG-INFO headers."""
    text = _read(os.path.join(path, "METADATA" if child.lower().endswith(".dist-info") else "PKG-INFO"))
    name = version = "?"
    for line in (text or "").splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key.lower() == "name" and name == "?":
            name = value.strip()
        elif key.lower() == "version" and version == "?":
            version = value.strip()
    return name, version


def _from_metadata(group: str) -> list[EntryPoint]:
    from importlib import metadata
    out = []
    for ep in metadata.entry_points(group=group):
        dist = (ep.dist.name, ep.dist.version) if ep.dist else ("?", "?")
        out.append(EntryPoint(ep.name, ep.value, *dist))
    return out
