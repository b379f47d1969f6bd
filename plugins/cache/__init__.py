"""uWSGI's shared cache (``--cache2``) and the in-app ``uwsgi.cache_*`` functions.

Each ``--cache2 name=NAME,items=N[,blocksize=B][,keysize=K]`` is one table in shared
memory, created before the first fork, so the master's workers (and their respawns)
see one another's items. An item holds a key of at most ``keysize`` bytes and a value
of at most ``blocksize`` bytes (uWSGI's defaults: 2048 and 65536), with an optional
expiry in seconds. ``uwsgi.cache_get/set/update/del/exists/clear/keys`` take an
optional cache name; without one they use the first cache declared. As in uWSGI, a
reload empties the caches; uWSGI's persistence (``store=``), its bitmap of blocks
spanning values over several blocks, remote caches (``name@host:port``) and the cache
routers are not implemented: their keys are refused when the option is read.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from uwsgi_py import Option, OptionError, hookimpl, log_line, string

if TYPE_CHECKING:
    from .table import Table

KNOWN = {"name", "items", "max_items", "maxitems", "blocksize", "keysize", "blocks", "bitmap",
         "hash", "hashsize", "hash_size"}
_caches: dict[str, Table] = {}


def cache_spec(raw) -> str:
    text = string(raw).strip()
    parse_spec(text)
    return text


def parse_spec(text: str) -> dict[str, str]:
    """``name=x,items=N,...`` -> its keys; ValueError naming what is wrong."""
    fields = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError("is not key=value,... (name=NAME,items=N)")
        fields[key.strip()] = value.strip()
    unknown = sorted(set(fields) - KNOWN)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not implemented in uwsgi-py's cache")
    if not fields.get("name"):
        raise ValueError("needs name=NAME")
    items = fields.get("items") or fields.get("max_items") or fields.get("maxitems")
    for key, value in (("items", items), ("blocksize", fields.get("blocksize", "65536")),
                       ("keysize", fields.get("keysize", "2048"))):
        if not value or not value.isdigit() or int(value) < 1:
            raise ValueError(f"needs {key}=N (a positive number)")
    fields["items"] = items
    return fields


@hookimpl
def uwsgi_add_options(registry):
    registry.add(Option("cache2", "create a shared cache: name=NAME,items=N[,blocksize=BYTES]"
                        "[,keysize=BYTES] (repeatable; uwsgi.cache_* in the app)",
                        multiple=True, convert=cache_spec, metavar="KEYVAL"))


@hookimpl
def uwsgi_configure(settings):
    """In the future master, before it forks or daemonizes: every fork shares the tables."""
    _caches.clear()
    if settings.cache2:
        from .table import Table    # mmap, zlib and the slot layout: only with a cache
    for spec in settings.cache2:
        fields = parse_spec(spec)
        name = fields["name"]
        if name in _caches:
            raise OptionError(f"--cache2: a cache named {name!r} is declared twice")
        try:
            _caches[name] = Table(int(fields["items"]), int(fields.get("keysize", 2048)),
                                  int(fields.get("blocksize", 65536)))
        except (OSError, ValueError) as e:
            raise OptionError(f"--cache2 {spec}: cannot create it: {e}") from None
        log_line(f"cache \"{name}\" initialized: {fields['items']} items, "
            f"{fields.get('blocksize', 65536)} bytes per value")


def _table(cache) -> Table | None:
    if cache is None:
        return next(iter(_caches.values()), None)
    return _caches.get(cache.decode() if isinstance(cache, bytes) else str(cache))


def _key(key) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


def _value(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def cache_get(key, cache=None):
    table = _table(cache)
    return None if table is None else table.get(_key(key))


def cache_exists(key, cache=None):
    table = _table(cache)
    return True if table is not None and table.get(_key(key)) is not None else None


def cache_set(key, value, expires=0, cache=None):
    table = _table(cache)
    return True if table is not None and table.put(_key(key), _value(value), int(expires),
                                                   replace=False) else None


def cache_update(key, value, expires=0, cache=None):
    table = _table(cache)
    return True if table is not None and table.put(_key(key), _value(value), int(expires),
                                                   replace=True) else None


def cache_del(key, cache=None):
    table = _table(cache)
    return True if table is not None and table.delete(_key(key)) else None


def cache_clear(cache=None):
    table = _table(cache)
    if table is None:
        return None
    table.clear()
    return True


def cache_keys(cache=None):
    table = _table(cache)
    return [] if table is None else table.keys()


@hookimpl
def uwsgi_app_api(server):
    if not _caches:
        return None
    return {"cache_get": cache_get, "cache_set": cache_set, "cache_update": cache_update,
            "cache_del": cache_del, "cache_exists": cache_exists, "cache_clear": cache_clear,
            "cache_keys": cache_keys}
