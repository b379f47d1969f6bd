"""The results table (markdown) and the issue's targets, from run.py's results dict."""
from __future__ import annotations

import math
import statistics

NAMES = {"uwsgi-py": "uwsgi-py", "uwsgi-py-ka": "uwsgi-py", "uwsgi": "uWSGI", "gunicorn": "gunicorn"}


def med(values) -> float:
    values = [v for v in values or () if not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else float("nan")


def fmt(v: float, digits: int = 0) -> str:
    if v is None or isinstance(v, float) and math.isnan(v):
        return "-"
    return f"{v:,.{digits}f}"


def fmt_x(v: float) -> str:
    """A ratio as ``1.23x``, or ``-`` when one side was not measured."""
    text = fmt(v, 2)
    return text if text == "-" else text + "x"


def ratio(a: float, b: float) -> float:
    if not b or math.isnan(a) or math.isnan(b):
        return float("nan")
    return a / b


def _tp(results, mode, key, field):
    return med([r.get(field, float("nan")) for r in results.get("throughput", {}).get(mode, {}).get(key, [])])


def per_round(results: dict, mode: str, a: str, b: str) -> list[float]:
    """``a``/``b`` requests/s in each round (the servers of a round ran one after the other)."""
    runs = results.get("throughput", {}).get(mode, {})
    return [ratio(x["rps"], y["rps"]) for x, y in zip(runs.get(a, []), runs.get(b, []))]


# (mode, uwsgi-py's key, the anchor's key, label): the fair anchor first in each mode
COMPARE = (
    ("keepalive", "uwsgi-py-ka", "uwsgi-11", "hello, keep-alive: uWSGI --http11-socket"),
    ("keepalive", "uwsgi-py-ka", "gunicorn-gt", "hello, keep-alive: gunicorn gthread"),
    ("keepalive", "uwsgi-py-ka", "uwsgi", "hello, keep-alive: uWSGI --http-socket (closes each)"),
    ("keepalive", "uwsgi-py-ka", "gunicorn", "hello, keep-alive: gunicorn sync (closes each)"),
    ("close", "uwsgi-py", "uwsgi", "hello, Connection: close: uWSGI --http-socket"),
    ("close", "uwsgi-py", "gunicorn", "hello, Connection: close: gunicorn sync"),
    ("close-p4", "uwsgi-py-p4", "uwsgi-p4", "hello, close, 4 workers (-c32): uWSGI -p 4"),
    ("big-close", "big-uwsgi-py", "big-uwsgi", "64 KiB, close: uWSGI --http-socket"),
    ("big-keepalive", "big-uwsgi-py-ka", "big-uwsgi-11", "64 KiB, keep-alive: uWSGI --http11-socket"),
)
LABELS = {"uwsgi-py": "uwsgi-py", "uwsgi-py-ka": "uwsgi-py --http-keepalive",
          "uwsgi-11": "uWSGI --http11-socket", "uwsgi": "uWSGI --http-socket",
          "gunicorn-gt": "gunicorn gthread --threads 4", "gunicorn": "gunicorn sync",
          "bare": "bare Python loop (reference)", "rack": "uwsgi-py --rack",
          "rack-ka": "uwsgi-py --rack --http-keepalive", "uwsgi-py-p4": "uwsgi-py -p 4",
          "uwsgi-p4": "uWSGI -p 4 --http-socket", "big-uwsgi-py": "uwsgi-py",
          "big-uwsgi": "uWSGI --http-socket", "big-uwsgi-py-ka": "uwsgi-py --http-keepalive",
          "big-uwsgi-11": "uWSGI --http11-socket"}
MODES = {"keepalive": "hello, keep-alive", "close": "hello, Connection: close",
         "close-p4": "hello, close, 4 workers", "big-close": "64 KiB, close",
         "big-keepalive": "64 KiB, keep-alive"}


def metrics(results: dict) -> dict:
    """Medians per (mode, server, field), PSS and cold start: the numbers the tables use."""
    m: dict = {}
    for mode, servers in results.get("throughput", {}).items():
        for key in servers:
            for field in ("rps", "p50_ms", "p99_ms", "cpu_us"):
                m[(mode, key, field)] = _tp(results, mode, key, field)
    pss = results.get("pss_kib", {})
    m["pss"] = {k: med(v) / 1024 for k, v in pss.items()}
    m["cold"] = {k: med(v) for k, v in results.get("cold_start_ms", {}).items()}
    return m


def _get(m, mode, key, field):
    return m.get((mode, key, field), float("nan"))


def targets(results: dict, m: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target of issue 22 (and the reload targets of issue 9);
    met is None when not measured."""
    out = []

    def add(name, value, goal, higher=True, unit="x"):
        if value is None or math.isnan(value):
            out.append((name, "not measured", None))
            return
        met = value >= goal if higher else value <= goal
        out.append((name, f"{value:.2f}{unit}" if unit == "x" else f"{value:.0f} {unit}", met))

    add("server CPU/request, Connection: close <= uWSGI --http-socket",
        ratio(_get(m, "close", "uwsgi-py", "cpu_us"), _get(m, "close", "uwsgi", "cpu_us")), 1.0,
        higher=False)
    add("server CPU/request, keep-alive <= uWSGI --http11-socket",
        ratio(_get(m, "keepalive", "uwsgi-py-ka", "cpu_us"), _get(m, "keepalive", "uwsgi-11", "cpu_us")),
        1.0, higher=False)
    add("requests/s, Connection: close >= uWSGI --http-socket",
        ratio(_get(m, "close", "uwsgi-py", "rps"), _get(m, "close", "uwsgi", "rps")), 1.0)
    add("requests/s, keep-alive >= uWSGI --http11-socket",
        ratio(_get(m, "keepalive", "uwsgi-py-ka", "rps"), _get(m, "keepalive", "uwsgi-11", "rps")), 1.0)
    pss = m["pss"]
    add("PSS (master + 2 workers) <= uWSGI's", ratio(pss.get("uwsgi-py", float("nan")),
                                                       pss.get("uwsgi", float("nan"))), 1.0, higher=False)
    add("cold start (exec to first 200) <= 2x uWSGI's",
        ratio(m["cold"].get("uwsgi-py", float("nan")), m["cold"].get("uwsgi", float("nan"))), 2.0,
        higher=False)
    rl = results.get("reload", {}).get("uwsgi-py")
    if rl:
        n = rl["reloads"]
        out.append((f"{n} graceful reloads under load: 0 failed", f"{rl['failed']} failed",
                    rl["failed"] == 0))
        gap = rl["reloading"]["max_gap_ms"]
        out.append(("longest gap with no completed request < 100 ms", f"{gap:.0f} ms", gap < 100))
        r = ratio(rl["reloading"]["p99_ms"], rl["steady"]["p99_ms"]) if rl["steady"] else float("nan")
        add("p99 during reloads <= 2x steady state", r, 2.0, higher=False)
    bu = results.get("burst", {}).get("uwsgi-py")
    if bu:
        out.append(("200-client burst with reloads: 0 failed", f"{bu['failed']} failed of "
                    f"{bu['ok'] + bu['failed']}", bu["failed"] == 0))
    return out


def throughput_tables(results: dict, m: dict) -> list[str]:
    """Every measured row, then uwsgi-py against each anchor of the same mode."""
    data = results.get("throughput", {})
    lines = ["| mode | server | requests/s | server CPU us/request | p50 ms | p99 ms | PSS MiB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for mode, servers in data.items():
        for key in servers:
            lines.append(f"| {MODES.get(mode, mode)} | {LABELS.get(key, key)} "
                         f"| {fmt(_get(m, mode, key, 'rps'))} | {fmt(_get(m, mode, key, 'cpu_us'))} "
                         f"| {fmt(_get(m, mode, key, 'p50_ms'), 2)} | {fmt(_get(m, mode, key, 'p99_ms'), 2)} "
                         f"| {fmt(m['pss'].get(key, float('nan')), 1)} |")
    pinned = results.get("pinning", {})
    if pinned:
        lines += ["", "Keep-alive clients answered at once: 3 connections opened together, one request "
                  "each, all kept open, 2 workers: "
                  + "; ".join(f"{LABELS.get(k, k)} {n} of 3" for k, n in sorted(pinned.items())) + "."]
    lines += ["", "| uwsgi-py against | requests/s ratio | server CPU/request ratio | p99 ratio |",
              "| --- | ---: | ---: | ---: |"]
    for mode, ours, anchor, label in COMPARE:
        if (mode, ours, "rps") not in m or (mode, anchor, "rps") not in m:
            continue
        lines.append(f"| {label} | {fmt_x(ratio(_get(m, mode, ours, 'rps'), _get(m, mode, anchor, 'rps')))} "
                     f"| {fmt_x(ratio(_get(m, mode, ours, 'cpu_us'), _get(m, mode, anchor, 'cpu_us')))} "
                     f"| {fmt_x(ratio(_get(m, mode, ours, 'p99_ms'), _get(m, mode, anchor, 'p99_ms')))} |")
    lines.append("")
    return lines


def markdown(results: dict) -> str:
    m = metrics(results)
    v = results.get("versions", {})
    cfg = results.get("config", {})
    lines = [
        f"# Benchmark: uwsgi-py vs uWSGI vs gunicorn ({v.get('date', '')})",
        "",
        f"Machine: {v.get('nproc')} CPUs, {v.get('cpu')}, Linux {v.get('kernel')}. "
        f"Python {v.get('python')}, uWSGI {v.get('uwsgi')}, gunicorn {v.get('gunicorn')}, "
        f"uwsgi-py {v.get('uwsgi-py')} ({v.get('uwsgi-py commit')}, {v.get('uwsgi-py build', 'pure Python')}), "
        f"{v.get('wrk')}.",
        "2 workers each unless the row says otherwise, loopback, request logging off"
        + (f"; wrk -t2 -c16 --latency, {cfg.get('rounds')} x {cfg.get('duration')} s per server "
           "and mode, interleaved; medians" if "throughput" in results else "")
        + f". Run took {results.get('elapsed_s')} s.",
        "",
    ]
    if "throughput" in results:
        lines += throughput_tables(results, m)
        rounds = [(label, per_round(results, mode, ours, anchor))
                  for mode, ours, anchor, label in (("close", "uwsgi-py", "uwsgi", "Connection: close"),
                                                    ("keepalive", "uwsgi-py-ka", "uwsgi-11",
                                                     "keep-alive (uWSGI --http11-socket)"))]
        rounds = [(label, r) for label, r in rounds if r]
        if rounds:
            lines += ["uwsgi-py / uWSGI requests/s round by round: "
                      + "; ".join(f"{label} " + ", ".join(f"{x:.2f}x" for x in r)
                                  for label, r in rounds) + ".", ""]
        bare = _get(m, "close", "bare", "rps")
        if not math.isnan(bare):
            lines += [f"Reference: a bare Python accept/read/write/close loop (bench/apps/bare_server.py, "
                      f"no parsing, no app) served {fmt(bare)} requests/s with Connection: close, "
                      f"{fmt(ratio(bare, _get(m, 'close', 'uwsgi', 'rps')), 2)}x uWSGI, "
                      f"{fmt(_get(m, 'close', 'bare', 'cpu_us'))} us of server CPU per request: "
                      "the ceiling for a Python server on this machine.", ""]
    cold = m["cold"]
    if cold:
        a, b, c = (cold.get(k, float("nan")) for k in ("uwsgi-py", "uwsgi", "gunicorn"))
        lines += ["| cold start, exec to first 200 | uwsgi-py | uWSGI | gunicorn | uwsgi-py / uWSGI |",
                  "| --- | ---: | ---: | ---: | ---: |",
                  f"| ms, median | {fmt(a)} | {fmt(b)} | {fmt(c)} | {fmt_x(ratio(a, b))} |", ""]
    lines += threads_table(results)
    for phase, title in (("reload", "Reload under load"), ("burst", "Burst")):
        data = results.get(phase)
        if not data:
            continue
        any_r = next(iter(data.values()))
        if phase == "reload":
            lines.append(f"{title}: 50 ms app, {any_r['clients']} clients (new connection per request, "
                         f"{cfg.get('timeout')} s timeout), {cfg.get('steady')} s steady, then SIGHUP "
                         f"every {cfg.get('every')} s x {any_r['reloads']}.")
            lines += ["", "| server | ok | failed (by kind) | longest gap, reloading | longest gap, steady "
                      "| p50 / p99 ms steady | p50 / p99 ms reloading | p99 ratio | reloads done |",
                      "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        else:
            lines.append(f"{title}: 50 ms app, 200 clients at once (new connection per request, "
                         f"{cfg.get('timeout')} s timeout), SIGHUP every {cfg.get('every')} s "
                         f"x {any_r['reloads']}; default listen backlog of each server.")
            lines += ["", "| server | ok | failed (by kind) | p50 / p99 ms | reloads done |",
                      "| --- | ---: | --- | ---: | --- |"]
        for key, r in data.items():
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(r["all_failed_by_kind"].items()))
            failed = f"{r['failed']}" + (f" ({kinds})" if kinds else "")
            rl, st = r["reloading"], r["steady"]
            if phase == "reload":
                lines.append(
                    f"| {NAMES.get(key, key)} | {r['ok']} | {failed} | {fmt(rl['max_gap_ms'])} ms "
                    f"| {fmt(st['max_gap_ms'])} ms | {fmt(st['p50_ms'])} / {fmt(st['p99_ms'])} "
                    f"| {fmt(rl['p50_ms'])} / {fmt(rl['p99_ms'])} "
                    f"| {fmt(ratio(rl['p99_ms'], st['p99_ms']), 2)}x "
                    f"| {r.get('reloads_done', '?')} of {r['reloads']}"
                    f"{'' if r['workers_replaced'] else ' (workers NOT replaced)'} |")
            else:
                lines.append(f"| {NAMES.get(key, key)} | {r['ok']} | {failed} "
                             f"| {fmt(rl['p50_ms'])} / {fmt(rl['p99_ms'])} "
                             f"| {r.get('reloads_done', '?')} of {r['reloads']} |")
        lines.append("")
    lines += ["| target (issues 22 and 9) | measured | met |", "| --- | --- | --- |"]
    for name, measured, met in targets(results, m):
        lines.append(f"| {name} | {measured} | {'-' if met is None else 'yes' if met else '**no**'} |")
    lines.append("")
    for note in results.get("notes", []):
        lines.append(f"Note: {note}")
    return "\n".join(lines) + "\n"


def threads_table(results: dict) -> list[str]:
    """Issue 19's rows: request threads, Connection: close, medians of the rounds."""
    data = results.get("threads")
    if not data:
        return []
    pss = results.get("threads_pss_kib", {})
    worker_pss = results.get("threads_worker_pss_kib", {})

    def val(key, field):
        runs = data.get(key)
        return med([r[field] for r in runs]) if runs else float("nan")

    lines = ["Threads (issue 19), -p 2, Connection: close; 50 ms app with wrk -c64, hello with -c16:",
             "", "| row | requests/s | p50 ms | p99 ms | PSS MiB | PSS MiB per worker "
             "| vs uWSGI requests/s | vs uWSGI p99 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    rows = (("slow-uwsgi-py-t8", "slow-uwsgi-t8", "50 ms app, uwsgi-py --threads 8"),
            ("slow-uwsgi-t8", "slow-uwsgi-t8", "50 ms app, uWSGI --threads 8"),
            ("slow-gunicorn-t8", "slow-uwsgi-t8", "50 ms app, gunicorn gthread --threads 8"),
            ("slow-uwsgi-t8-pluggy", "slow-uwsgi-t8", "50 ms app, uWSGI --threads 8, app imports pluggy"),
            ("slow-uwsgi-t8-image", "slow-uwsgi-t8",
             "50 ms app, uWSGI --threads 8, app imports uwsgi-py's image (apps/slow_image.py)"),
            ("slow-uwsgi-py-t8-lean", "slow-uwsgi-t8",
             "50 ms app, uwsgi-py --threads 8, every plugin but python blocked"),
            ("flask-uwsgi-py-t8", "flask-uwsgi-t8", "50 ms Flask app, uwsgi-py --threads 8"),
            ("flask-uwsgi-t8", "flask-uwsgi-t8", "50 ms Flask app, uWSGI --threads 8"),
            ("hello-uwsgi-py-t8", "hello-uwsgi-t8", "hello, uwsgi-py --threads 8"),
            ("hello-uwsgi-t8", "hello-uwsgi-t8", "hello, uWSGI --threads 8"),
            ("uwsgi-py", "hello-uwsgi-t8", "hello, uwsgi-py without threads"))
    for key, ref, label in rows:
        if key not in data:
            continue
        mem = med(pss[key]) / 1024 if pss.get(key) else float("nan")
        per_worker = med(worker_pss[key]) / 1024 if worker_pss.get(key) else float("nan")
        lines.append(f"| {label} | {fmt(val(key, 'rps'))} | {fmt(val(key, 'p50_ms'), 2)} "
                     f"| {fmt(val(key, 'p99_ms'), 2)} | {fmt(mem, 1)} | {fmt(per_worker, 1)} "
                     f"| {fmt_x(ratio(val(key, 'rps'), val(ref, 'rps')))} "
                     f"| {fmt_x(ratio(val(key, 'p99_ms'), val(ref, 'p99_ms')))} |")
    return lines + [""]
