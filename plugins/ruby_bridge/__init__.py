"""uwsgi-py ruby_bridge plugin (work in progress)."""
