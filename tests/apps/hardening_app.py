"""The app of the hardening tests (issue 10): big responses, memory growth, slow bodies."""
import os
import time

HOLD = []   # memory kept by /grow/N


def application(environ, start_response):
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain")]
    if path.startswith("/big/"):             # N MB, for slow readers
        body = b"x" * (int(path[5:]) << 20)
    elif path.startswith("/grow/"):          # keep N MB more in this worker
        HOLD.append(bytearray(int(path[6:]) << 20))
        body = f"holding {sum(len(b) for b in HOLD) >> 20} MB in {os.getpid()}\n".encode()
    elif path.startswith("/slow/"):
        os.write(2, f"slow-started {path} in {os.getpid()}\n".encode())
        time.sleep(float(path[6:]))
        body = f"slow done {os.getpid()}\n".encode()
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/echo-lines":              # reads the body line by line
        body = b"".join(environ["wsgi.input"])
    else:
        body = b"hello\n"
    start_response("200 OK", headers + [("Content-Length", str(len(body)))])
    return [body]
