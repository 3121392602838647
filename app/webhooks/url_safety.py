"""Which receiver URLs the service may call: the scheme, and the addresses their host resolves to.

A receiver on loopback, a private network or a link-local address (a cloud's metadata service) would
let a tenant reach the service's own network; such addresses are refused unless configured. So are the
IPv6 forms that map, translate or embed an IPv4 address (mapped, NAT64, 6to4, Teredo, IPv4-compatible) and
site-local ones: a gateway or tunnel may carry them to any IPv4 address, the metadata service's included.
The host is checked when the endpoint is registered and resolved again before every call, and the call
goes to the address that was checked, so a name that later resolves elsewhere (DNS rebinding) changes
nothing.
"""

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = {"http": 80, "https": 443}
# IPv6 networks whose addresses map, translate or embed an IPv4 address, which a gateway or tunnel turns into
# that IPv4 address (the metadata service's, say) where no check sees it; and deprecated site-local.
EMBEDDING_NETWORKS = {
    ipaddress.IPv6Network(network): description
    for network, description in (
        ("::ffff:0:0/96", "an IPv4-mapped IPv6 address"),
        ("::ffff:0:0:0/96", "an IPv4-translated IPv6 address"),
        ("64:ff9b::/96", "a NAT64 address, which embeds an IPv4 address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address, which embeds an IPv4 address"),
        ("::/96", "an IPv4-compatible IPv6 address"),
        ("2002::/16", "a 6to4 address, which embeds an IPv4 address"),
        ("2001::/32", "a Teredo address, which embeds an IPv4 address"),
        ("fec0::/10", "a site-local IPv6 address"),
    )
}


ALLOW_HTTP_SETTING = "DISTILLERY_WEBHOOK_ALLOW_HTTP"
ALLOW_PRIVATE_SETTING = "DISTILLERY_WEBHOOK_ALLOW_PRIVATE_ADDRESSES"
NOT_UNICAST = "not a unicast address"


class UnsafeUrl(ValueError):
    """A URL the service must not call; `setting` names the service setting that would allow it, if any."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting

    def with_fix(self) -> str:
        """The refusal, and the setting an operator sets to lift it where there is one."""
        if self.setting is None:
            return str(self)
        return f"{self}; the service's operator allows it with {self.setting}=true"


@dataclass(frozen=True)
class PinnedTarget:
    """Where one call goes: the URL with its host replaced by a checked address, and what keeps the
    original name on the wire (the Host header, and the name TLS checks the certificate against)."""

    url: str
    host_header: str
    extensions: dict[str, str] = field(default_factory=dict)


def check_scheme(url: str, *, allow_http: bool) -> None:
    """https, or http where the service allows it."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and allow_http):
        return
    allowed = "https or http" if allow_http else "https"
    setting = ALLOW_HTTP_SETTING if scheme == "http" else None
    raise UnsafeUrl(f"the URL's scheme must be {allowed}, not '{scheme}'", setting=setting)


def address_refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """What makes an address uncallable (`not a unicast address`), or None when it may be called."""
    unwrapped = address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        unwrapped = address.ipv4_mapped
    if unwrapped.is_unspecified or unwrapped.is_multicast:
        return NOT_UNICAST
    if allow_private:
        return None
    embedding = embedding_network(address)
    if embedding is not None:
        return embedding
    if not address.is_global:
        return "a loopback, private, link-local or reserved address"
    return None


def embedding_network(address: IPAddress) -> str | None:
    """What IPv4-embedding or site-local kind of IPv6 address this is, or None (IPv4 and loopback too)."""
    if isinstance(address, ipaddress.IPv4Address) or address.is_loopback:
        return None
    return next((kind for network, kind in EMBEDDING_NETWORKS.items() if address in network), None)


def _refused(host: str, address: IPAddress, refusal: str) -> str:
    """`10.0.0.1 is a private ... address`, or `name resolves to 10.0.0.1, a private ... address`."""
    if host.strip("[]") == str(address):
        return f"{address} is {refusal}"
    return f"{host} resolves to {address}, {refusal}"


def _lifting(refusal: str) -> str | None:
    """The setting that lifts an address refusal: every one but a non-unicast address's."""
    return None if refusal == NOT_UNICAST else ALLOW_PRIVATE_SETTING


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses a host name (or literal) stands for; raises OSError when it resolves to none now, and
    UnsafeUrl when it never can."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (UnicodeError, ValueError) as error:  # a name DNS cannot carry, such as a label over 63 bytes
        raise UnsafeUrl(f"the URL's host is not a valid name: {error}") from error
    # An IPv6 scope (`fe80::1%eth0`) is not part of the address itself.
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def check_registration(url: str, *, allow_http: bool, allow_private: bool) -> None:
    """Refuse a URL whose scheme is not allowed or whose host stands for a refused address.

    A name that does not resolve now is accepted: it is resolved and checked again before each call.
    """
    check_scheme(url, allow_http=allow_http)
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("the URL must hold no credentials: deliveries are authenticated by their signature")
    host = parts.hostname or ""
    try:
        addresses = resolve(host, parts.port or DEFAULT_PORTS[parts.scheme.lower()])
    except OSError:
        return
    for address in addresses:
        refusal = address_refusal(address, allow_private=allow_private)
        if refusal is not None:
            raise UnsafeUrl(f"the receiver {_refused(host, address, refusal)}", setting=_lifting(refusal))


def pinned_target(url: str, *, allow_http: bool, allow_private: bool) -> PinnedTarget:
    """Resolve the URL's host now and pick an allowed address; raises UnsafeUrl when there is none."""
    check_scheme(url, allow_http=allow_http)
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    port = parts.port or DEFAULT_PORTS[scheme]
    try:
        addresses = resolve(host, port)
    except OSError as error:
        raise UnsafeUrl(f"could not resolve {host}: {error}") from error
    refusals, settings_lifting = [], set()
    for address in addresses:
        refusal = address_refusal(address, allow_private=allow_private)
        if refusal is not None:
            refusals.append(_refused(host, address, refusal))
            settings_lifting.add(_lifting(refusal))
            continue
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        pinned = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = parts.netloc.rpartition("@")[2]
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        return PinnedTarget(url=pinned, host_header=host_header, extensions=extensions)
    raise UnsafeUrl(
        "; ".join(refusals), setting=ALLOW_PRIVATE_SETTING if None not in settings_lifting else None
    )
