"""uwsgi-py fifo plugin (work in progress)."""
