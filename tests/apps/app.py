"""The test app: every integration test drives the real server with it."""
import json
import os
import time

import uwsgi

GENERATION_MARK = "v1"


def application(environ, start_response):
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain")]
    if path.startswith("/slow/"):
        os.write(2, f"slow-started {path} in {os.getpid()}\n".encode())
        time.sleep(float(path[6:]))
        body = f"slow done {os.getpid()}\n".encode()
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/mark":
        body = GENERATION_MARK.encode()
    elif path == "/boom":
        raise RuntimeError("boom from the test app")
    elif path == "/echo":
        data = environ["wsgi.input"].read()
        body = data
    elif path == "/info":
        info = {
            "version": uwsgi.version.decode(), "numproc": uwsgi.numproc,
            "worker_id": uwsgi.worker_id(), "masterpid": uwsgi.masterpid(),
            "started_on": uwsgi.started_on, "is_a_reload": uwsgi.is_a_reload,
            "total_requests": uwsgi.total_requests(),
            "opt": {k: (v.decode() if isinstance(v, bytes) else
                        [x.decode() for x in v] if isinstance(v, list) else v)
                    for k, v in uwsgi.opt.items()},
            "env_x": os.environ.get("X"),
            "leaked": sorted(k for k in os.environ if k.startswith("UWSGI_PY_")),
        }
        body = json.dumps(info).encode()
        headers = [("Content-Type", "application/json")]
    elif path == "/workers":
        ws = [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in w.items() if k != "apps"}
              for w in uwsgi.workers()]
        body = json.dumps(ws).encode()
    elif path == "/reload":
        body = repr(uwsgi.reload()).encode()
    elif path == "/stop":
        body = repr(uwsgi.stop()).encode()
    elif path == "/environ":
        body = json.dumps({k: v for k, v in environ.items() if isinstance(v, str)}).encode()
    else:
        body = b"hello\n"
    start_response("200 OK", headers)
    return [body]
