"""The test suite. With ``BULKUSERS_TEST_TLS=1`` it runs every end-to-end emulator over HTTPS.

The suite's throwaway CA is made here, before anything imports aiohttp (which builds and caches
its default TLS context at import time), and named in ``SSL_CERT_FILE``: then bulkusers runs, the
tests' own aiohttp and urllib calls and the subprocesses some tests start all trust it, while
`conftest.run_cli` also passes it with ``--ca-bundle``. Without the variable nothing happens here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: The suite's CA (PEM) and the emulator's certificate with its key (PEM), in TLS runs only.
SUITE_CA: Path | None = None
SUITE_CERT: Path | None = None

if os.environ.get("BULKUSERS_TEST_TLS", "") == "1":
    import trustme

    _folder = Path(tempfile.mkdtemp(prefix="bulkusers-test-tls-"))
    _ca = trustme.CA(organization_name="bulkusers test suite (throwaway)")
    SUITE_CA, SUITE_CERT = _folder / "ca.pem", _folder / "server.pem"
    _ca.cert_pem.write_to_path(str(SUITE_CA))
    _ca.issue_cert("127.0.0.1", "localhost", "::1").private_key_and_cert_chain_pem.write_to_path(
        str(SUITE_CERT))
    os.environ["SSL_CERT_FILE"] = str(SUITE_CA)
