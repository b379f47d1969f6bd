"""uwsgi-py stats plugin (work in progress)."""
