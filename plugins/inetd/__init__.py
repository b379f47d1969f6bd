"""uwsgi-py inetd plugin (work in progress)."""
