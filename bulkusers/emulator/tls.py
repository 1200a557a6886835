"""HTTPS for the emulator: a server context from PEM files, or a throwaway self-signed CA.

Real Sisense servers are reached over HTTPS, and one public client library speaks nothing else, so
a rehearsal server must be able to serve it. The throwaway certificate is made with trustme (the
optional ``tls`` extra: it brings in ``cryptography``, about 16 MB installed, which plain users of
the tool do not need).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from bulkusers.frozen import frozen

INSTALL_HINT = "pip install 'bulkusers[tls]'"


class TlsSetupError(Exception):
    """The emulator cannot serve HTTPS as asked; the message says why and what to do."""


@frozen
class ThrowawayCa:
    """A self-signed CA made for one emulator run: the server context and the CA's PEM file."""

    context: ssl.SSLContext
    ca_file: Path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context from a PEM certificate (chain) and its private key."""
    for path in (cert, key):
        if not path.is_file():
            raise TlsSetupError(f"cannot read {path}: no such file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise TlsSetupError(f"cannot use {cert} and {key} as a TLS certificate and key "
                            f"({getattr(exc, 'reason', None) or exc}); both must be PEM files "
                            "and the key must match the certificate") from None
    return context


def throwaway_ca(folder: Path, hosts: tuple[str, ...]) -> ThrowawayCa:
    """Make a CA and a certificate it signs for `hosts`; write the CA's PEM into `folder`."""
    try:
        import trustme
    except ImportError:
        raise TlsSetupError("--tls-self-signed needs the optional 'tls' extra: "
                            f"{INSTALL_HINT}") from None
    ca = trustme.CA(organization_name="bulkusers emulator (throwaway)")
    leaf = ca.issue_cert(*dict.fromkeys(hosts))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    ca_file = folder / "emulator-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ThrowawayCa(context, ca_file)


def certificate_hosts(host: str) -> tuple[str, ...]:
    """The names a throwaway certificate must cover to be reached at `host` or on loopback."""
    loopback = ("127.0.0.1", "localhost", "::1")
    if host in ("", "0.0.0.0", "::"):
        return loopback  # a wildcard address: clients use a concrete one, loopback here
    return (host, *loopback)
