"""Helpers for the signal-framework tests: start an app that records its effects, read them."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from conftest import APPS

BOUND = re.compile(r"uwsgi socket (\d+) bound to INET address 127\.0\.0\.1:(\d+)")


class Event:
    def __init__(self, line: str):
        parts = line.split()
        self.name = parts[0]
        self.time = float(parts[1])
        fields = dict(p.split("=", 1) for p in parts[2:5])
        self.pid, self.wid, self.mule = int(fields["pid"]), int(fields["wid"]), int(fields["mule"])
        self.detail = " ".join(parts[5:])

    def __repr__(self) -> str:
        return f"<{self.name} {self.time:.3f} pid={self.pid} wid={self.wid} mule={self.mule} {self.detail}>"


def events(out: Path, name: str | None = None) -> list[Event]:
    path = out / "events.log"
    if not path.exists():
        return []
    found = [Event(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in found if name is None or e.name == name]


def start_app(server, tmp_path: Path, app: str, *args: str, wait: bool = True):
    """Start ``tests/apps/<app>`` with --master, its events recorded in tmp_path."""
    shutil.copy(APPS / app, tmp_path / app)
    inst = server("--master", "--wsgi-file", app, *args, app=False, wait=wait,
                  env={"SIGNALS_OUT": str(tmp_path)})
    if wait:
        inst.wait_serving()
    return inst


def uwsgi_port(inst, index: int) -> int:
    """The auto-assigned port of socket ``index`` (its 'bound to' log line)."""
    for match in BOUND.finditer(inst.wait_log("uwsgi socket 1 bound")):
        if int(match.group(1)) == index:
            return int(match.group(2))
    raise AssertionError(f"socket {index} is not bound:\n{inst.log()[-2000:]}")
