"""A programmed mule (--mule mule_program.py): runs as __main__ in the mule, forever."""
import os
import time

import uwsgi

OUT = os.environ["SIGNALS_OUT"]
fd = os.open(os.path.join(OUT, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, f"program {time.time():.3f} pid={os.getpid()} wid={uwsgi.worker_id()} "
             f"mule={uwsgi.mule_id()} {__name__}\n".encode())
os.close(fd)
while True:
    message = uwsgi.mule_get_msg()
    if message:
        fd = os.open(os.path.join(OUT, "events.log"), os.O_WRONLY | os.O_APPEND)
        os.write(fd, f"got {time.time():.3f} pid={os.getpid()} wid=0 mule={uwsgi.mule_id()} "
                     f"{message.decode()}\n".encode())
        os.close(fd)
