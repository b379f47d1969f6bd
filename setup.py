"""The optional compiled build (README, "Compiled request path").

Without ``UWSGI_PY_COMPILE=1`` this adds nothing: the package is pure Python. With it, mypyc
compiles the request path (``COMPILED``) from the same source, and pip installs mypy in the
build environment first (``setup_requires``). The .py files stay installed beside the compiled
modules: a build for another interpreter is ignored by Python, which imports the .py instead.
"""
import os

from setuptools import setup

# the modules a worker runs for every request; threads.py because ThreadedLoop subclasses
# serving.Loop (interpreted code cannot subclass a compiled class)
COMPILED = ("proto", "conn", "response", "dispatch", "serving", "threads", "scoreboard")
STAGE = os.path.join("build", "mypyc-src")   # where core/ is seen as uwsgi_py/, mypy's view


def compiled_extensions():
    try:
        from mypyc.build import mypycify
    except ImportError:   # pip's first pass: it asks for the build requirements (setup_requires)
        return []
    # mypy names a module by its directory: core/proto.py would be core.proto
    os.makedirs(STAGE, exist_ok=True)
    link = os.path.join(STAGE, "uwsgi_py")
    if not os.path.islink(link):
        os.symlink(os.path.abspath("core"), link)
    # the compiled modules must type-check; the modules they import are read, not judged
    return mypycify(["--follow-imports", "silent", "--disable-error-code", "annotation-unchecked",
                     *(os.path.join(link, f"{name}.py") for name in COMPILED)],
                    opt_level="3", group_name="uwsgi_py.hotpath")   # core/hotpath.py reads the build


if os.environ.get("UWSGI_PY_COMPILE") == "1":
    setup(ext_modules=compiled_extensions(), setup_requires=["mypy>=1.10"])
else:
    setup()
