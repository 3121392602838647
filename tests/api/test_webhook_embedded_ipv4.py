"""IPv6 receivers that map, translate or embed an IPv4 address, and site-local ones, are refused unless
private addresses are allowed: at registration and again when a delivery is sent."""

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from app.webhooks.url_safety import UnsafeUrl, pinned_target

# Each form pointing at the metadata service (169.254.169.254 = a9fe:a9fe) and at loopback (127.0.0.1).
EMBEDDED_IPV4_HOSTS = {
    "mapped metadata": "[::ffff:169.254.169.254]",
    "mapped loopback": "[::ffff:127.0.0.1]",
    "translated metadata": "[::ffff:0:a9fe:a9fe]",
    "translated loopback": "[::ffff:0:7f00:1]",
    "nat64 metadata": "[64:ff9b::a9fe:a9fe]",
    "nat64 loopback": "[64:ff9b::7f00:1]",
    "local nat64 metadata": "[64:ff9b:1::a9fe:a9fe]",
    "local nat64 loopback": "[64:ff9b:1::7f00:1]",
    "compatible metadata": "[::a9fe:a9fe]",
    "compatible loopback": "[::7f00:1]",
    "6to4 metadata": "[2002:a9fe:a9fe::]",
    "6to4 loopback": "[2002:7f00:1::1]",
    # Teredo holds the client's IPv4 inverted in the last 32 bits.
    "teredo metadata": "[2001:0:4136:e378:8000:63bf:5601:5601]",
    "teredo loopback": "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    "site-local": "[fec0::1]",
}


@pytest.fixture
def strict_and_lenient(make_client: Callable[..., Any], settings: Any) -> tuple[Any, Any]:
    strict = make_client(api_key=settings.dev_api_key)
    lenient = make_client(api_key=settings.dev_api_key, webhook_allow_private_addresses=True)
    return strict, lenient


@pytest.mark.parametrize("host", EMBEDDED_IPV4_HOSTS.values(), ids=EMBEDDED_IPV4_HOSTS.keys())
def test_registering_an_ipv6_receiver_that_embeds_ipv4_is_a_422_on_url_unless_private_is_allowed(
    strict_and_lenient: tuple[Any, Any], host: str
) -> None:
    strict, lenient = strict_and_lenient
    url = f"https://{host}/x"

    refused = strict.post("/v1/webhooks", json={"url": url})
    allowed = lenient.post("/v1/webhooks", json={"url": url})

    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("url_not_allowed", "url")
    assert str(ipaddress.ip_address(host.strip("[]"))) in error["message"]
    assert allowed.status_code == 201, allowed.text


@pytest.mark.parametrize("host", EMBEDDED_IPV4_HOSTS.values(), ids=EMBEDDED_IPV4_HOSTS.keys())
def test_sending_to_an_ipv6_address_that_embeds_ipv4_is_refused_unless_private_is_allowed(host: str) -> None:
    url = f"https://{host}:8443/x?y=1"

    with pytest.raises(UnsafeUrl, match="address"):
        pinned_target(url, allow_http=False, allow_private=False)
    assert pinned_target(url, allow_http=False, allow_private=True).url.endswith("]:8443/x?y=1")


def test_public_ipv6_and_ipv4_receivers_stay_allowed() -> None:
    for url in ("https://[2606:4700::1111]/x", "https://[2a00:1450:4007:80e::200e]/x", "https://1.1.1.1/x"):
        assert pinned_target(url, allow_http=False, allow_private=False).url == url
