"""--response-header "Name: value": a header on every response the server sends.

Built only on the public plugin API: ``uwsgi_response_headers`` sees the app's
responses and the server's own error responses (400, 408, 500...) alike.
"""
from uwsgi_py import Option, OptionError, hookimpl


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in text for c in "\r\n"):
        raise ValueError("is not 'Name: value'")
    return name.strip(), value.strip()


@hookimpl
def uwsgi_add_options(registry):
    registry.add(Option("response-header", "add header 'Name: value' to every response, "
                        "the server's own errors included", multiple=True, metavar="HEADER"))


@hookimpl
def uwsgi_configure(settings):
    for text in settings.response_header:
        try:
            _header(text)
        except ValueError as e:
            raise OptionError(f"--response-header: {text!r} {e}") from None


@hookimpl
def uwsgi_response_headers(worker):
    headers = [_header(text) for text in worker.settings.response_header]
    if not headers:
        return None

    def on_response(request, status):
        return headers
    return on_response
