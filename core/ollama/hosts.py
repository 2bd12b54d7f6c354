"""Where the Ollama server is: `--host` and `OLLAMA_HOST`, read the way the ollama CLI reads them."""

from __future__ import annotations

import ipaddress
import re
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


# -- servers behind a gate: headers, credentials in the URL, a CA of their own ------------------------
REDACTED = "***"


def parse_header(text: str) -> tuple[str, str]:
    """`Name: value` -> (name, value). ValueError names the problem, never the value (a secret)."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(ch.isspace() for ch in name) or not value:
        raise ValueError("expected 'Name: value' (e.g. 'Authorization: Bearer TOKEN')")
    return name, value


def url_credentials(setting: str | None) -> dict[str, str]:
    """An `Authorization: Basic` header from `user:password@` in a host setting; {} without them."""
    import base64

    text = (setting or "").strip()
    if "@" not in text:
        return {}
    split = urllib.parse.urlsplit(text if "://" in text else f"http://{text}")
    if split.username is None:
        return {}
    user = urllib.parse.unquote(split.username)
    password = urllib.parse.unquote(split.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def redact_url(text: str) -> str:
    """`https://user:secret@host` -> `https://***@host`: what may be shown of a host setting."""
    return re.sub(r"(^|://)[^/@\s]+@", lambda m: f"{m.group(1)}{REDACTED}@", text)


def redact_argv(argv: list[str]) -> list[str]:
    """A command line as it may be kept (a recording): header values and URL credentials hidden."""
    kept = []
    hide_next = False
    for arg in argv:
        if hide_next:
            name = arg.partition(":")[0]
            kept.append(f"{name}: {REDACTED}")
            hide_next = False
        elif arg == "--header":
            kept.append(arg)
            hide_next = True
        elif arg.startswith("--header="):
            kept.append(f"--header={arg[9:].partition(':')[0]}: {REDACTED}")
        else:
            kept.append(redact_url(arg))
    return kept


def access_headers(setting: str | None, header_texts: list[str] | None) -> dict[str, str]:
    """The headers every request carries: `user:password@` in the host setting as basic auth, then
    each `--header` (which wins over the URL's). ValueError as parse_header says."""
    headers = url_credentials(setting)
    for text in header_texts or []:
        name, value = parse_header(text)
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        headers[name] = value
    return headers


# -- addresses llmtop listens on (--metrics, --proxy) ------------------------------------------------
DEFAULT_ADDRESS = "127.0.0.1"


def parse_address(text: str) -> tuple[str, int]:
    """`9464`, `0.0.0.0:9464`, `[::]:9464` -> (address, port); ValueError saying what is wrong."""
    address, _, port = text.rpartition(":")
    address = address.strip("[]") or DEFAULT_ADDRESS
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not [ADDRESS:]PORT with a port from 1 to 65535")
    return address, int(port)


def is_loopback(address: str) -> bool:
    """Whether `address` (a listener's or a peer's) is this machine's loopback, reachable from here alone."""
    import ipaddress

    if address.lower() == "localhost":
        return True
    try:
        parsed = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(parsed, "ipv4_mapped", None)
    return bool(parsed.is_loopback or (mapped is not None and mapped.is_loopback))


def app_url(address: str, port: int) -> str:
    """The URL an app on this machine uses to reach a listener on `address`: a listener on every
    interface (0.0.0.0, ::) is reached at the loopback address, which Windows apps can connect to."""
    if address in ("0.0.0.0", ""):
        address = "127.0.0.1"
    elif address == "::":
        address = "::1"
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def exposure(what: str, address: str, port: int, gives: str) -> str | None:
    """One line saying who can reach a listener that is not on loopback, and what it gives them;
    None on loopback."""
    if is_loopback(address):
        return None
    who = (
        "any machine that can reach this one"
        if address in ("0.0.0.0", "::", "")
        else f"any machine that reaches {address}"
    )
    return f"note: {what} listens on {address}:{port}: {who} can use it: {gives}"
