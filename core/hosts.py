"""Where the Ollama server is: `--host` and `OLLAMA_HOST`, read the way the ollama CLI reads them."""

from __future__ import annotations

import ipaddress
import urllib.parse

DEFAULT_PORT = 11434
DEFAULT_HOST = "127.0.0.1"

# Addresses a server binds to but a client cannot always connect to (Windows refuses 0.0.0.0):
# `OLLAMA_HOST=0.0.0.0` is common on servers, and it means "this machine" to the client.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class HostError(ValueError):
    """The host setting cannot be read as an address."""


def ollama_base_url(setting: str | None) -> str:
    """Turn `host`, `host:port` or a URL into the base URL of the Ollama API.

    As in the ollama CLI: no scheme means http on port 11434; `http://host` means port 80 and
    `https://host` port 443; an empty setting means http://127.0.0.1:11434. A path is kept.
    """
    text = (setting or "").strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest, port = "http", text, DEFAULT_PORT
    elif scheme.lower() == "http":
        port = 80
    elif scheme.lower() == "https":
        port = 443
    else:
        raise HostError(f"unsupported scheme {scheme!r} in host {setting!r} (use http or https)")
    scheme = scheme.lower()
    try:
        split = urllib.parse.urlsplit(f"{scheme}://{rest}")
        explicit_port = split.port
    except ValueError as exc:
        raise HostError(f"cannot read host {setting!r}: {exc}") from None
    if split.query or split.fragment:
        raise HostError(f"cannot read host {setting!r}: a query or fragment is not allowed")
    host = split.hostname or DEFAULT_HOST
    if rest and not split.hostname and not rest.startswith(":"):
        raise HostError(f"cannot read host {setting!r}")
    host = _WILDCARDS.get(host, host)
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        if any(ch.isspace() for ch in host):
            raise HostError(f"cannot read host {setting!r}: blank in the host name") from None
    path = split.path.strip("/")
    base = f"{scheme}://{host}:{explicit_port or port}"
    return f"{base}/{path}" if path else base


def is_local(base_url: str, own_addresses: frozenset[str] = frozenset()) -> bool:
    """True when the server is on this machine, so its processes can be measured.

    `own_addresses` are this machine's interface addresses (a server reached by its LAN address
    is still local).
    """
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if host in {"localhost", "ip6-localhost"} or host in own_addresses:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
