"""The 50 ms app of ``slow.py`` as a Flask app: a real framework's import image and request
path, for the threads rows' PSS per worker (issue 19)."""
import time

from flask import Flask

application = Flask(__name__)


@application.route("/")
def slow():
    time.sleep(0.05)
    return "slow\n"
