"""The stats document in Prometheus' text exposition format (version 0.0.4), for ``/metrics``.

Rendered from the same document the JSON answer is (``document.build``), so both
give the same numbers. Names are ``uwsgi_*``; per-worker series carry a
``worker`` label (the slot id, stable across respawns, not the pid), per-socket
ones a ``socket`` label. Counters end in ``_total``; times are in seconds,
sizes in bytes.
"""
from __future__ import annotations

STATUSES = ("idle", "busy", "pause", "cheap")


def _label(value) -> str:
    text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{text}"'


def _number(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(int(value))


class _Out:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help: str, samples) -> None:
        """``samples``: (labels dict, value) pairs; a counter is named ``NAME_total`` (0.0.4)."""
        sample = f"{name}_total" if kind == "counter" else name
        self.lines.append(f"# HELP {sample} {help}")
        self.lines.append(f"# TYPE {sample} {kind}")
        for labels, value in samples:
            text = ",".join(f"{k}={_label(v)}" for k, v in labels.items())
            self.lines.append(f"{sample}{{{text}}} {_number(value)}" if text
                              else f"{sample} {_number(value)}")


def render(doc: dict, status: dict) -> str:
    out = _Out()
    workers = doc["workers"]
    w = lambda key, scale=1: [({"worker": x["id"]}, x[key] / scale if scale != 1 else x[key])  # noqa: E731
                              for x in workers]
    out.family("uwsgi_info", "gauge", "the instance: uWSGI version it is compatible with",
               [({"version": doc["version"], "uwsgi_py_version": doc.get("uwsgi_py_version", "")}, 1)])
    out.family("uwsgi_ready", "gauge", "1 while the instance takes traffic (see /ready)",
               [({}, status["ready"])])
    out.family("uwsgi_state", "gauge", "the readiness state, one-hot",
               [({"state": name}, status["state"] == name)
                for name in ("starting", "ready", "reloading", "refused", "paused", "stopping")])
    out.family("uwsgi_generation", "gauge", "exec reloads since the first start",
               [({}, doc.get("generation", 0))])
    out.family("uwsgi_reloads", "counter", "reload outcomes recorded (the last 20 are kept)",
               [({}, len(doc.get("reloads", [])))])
    last = (doc.get("reloads") or [None])[-1]
    if last is not None:
        out.family("uwsgi_last_reload_refused", "gauge", "1 when the last reload was refused",
                   [({}, bool(last.get("refused")))])
        out.family("uwsgi_last_reload_duration_seconds", "gauge", "duration of the last reload",
                   [({}, (last.get("duration_ms") or 0) / 1000)])
        out.family("uwsgi_last_reload_timestamp_seconds", "gauge", "when the last reload ended",
                   [({}, last.get("time") or 0)])
    out.family("uwsgi_listen_queue", "gauge", "connections waiting in the fullest listen queue",
               [({}, doc["listen_queue"])])
    out.family("uwsgi_listen_queue_errors", "counter", "seconds a listen queue was found full",
               [({}, doc["listen_queue_errors"])])
    out.family("uwsgi_socket_queue", "gauge", "connections waiting in the socket's listen queue",
               [({"socket": s["name"], "proto": s["proto"]}, s["queue"]) for s in doc["sockets"]])
    out.family("uwsgi_socket_max_queue", "gauge", "the socket's listen queue size (backlog)",
               [({"socket": s["name"], "proto": s["proto"]}, s["max_queue"]) for s in doc["sockets"]])
    out.family("uwsgi_worker_requests", "counter", "requests served by the worker slot",
               w("requests"))
    out.family("uwsgi_worker_exceptions", "counter", "requests whose app raised", w("exceptions"))
    out.family("uwsgi_worker_harakiri", "counter", "workers killed by --harakiri",
               w("harakiri_count"))
    out.family("uwsgi_worker_respawns", "counter", "times the slot got a new process",
               w("respawn_count"))
    out.family("uwsgi_worker_busy_seconds", "counter", "time spent serving requests",
               w("running_time", 1e6))
    out.family("uwsgi_worker_transmitted_bytes", "counter", "response bytes sent", w("tx"))
    out.family("uwsgi_worker_avg_response_time_seconds", "gauge",
               "uWSGI's decaying average of response times", w("avg_rt", 1e6))
    out.family("uwsgi_worker_accepting", "gauge", "1 when the worker accepts connections",
               w("accepting"))
    out.family("uwsgi_worker_status", "gauge", "the worker's status, one-hot",
               [({"worker": x["id"], "status": name}, x["status"] == name)
                for x in workers for name in STATUSES])
    out.family("uwsgi_worker_rss_bytes", "gauge", "resident memory (0 without --memory-report)",
               w("rss"))
    out.family("uwsgi_worker_vsz_bytes", "gauge", "address space (0 without --memory-report)",
               w("vsz"))
    out.family("uwsgi_worker_last_spawn_timestamp_seconds", "gauge", "when the worker started",
               w("last_spawn"))
    return "\n".join(out.lines) + "\n"
