"""An aiohttp application served on a free loopback port from its own event loop in a thread,
so that synchronous tests (and the CLI they drive) can talk to it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

from aiohttp import web


class AppThread:
    """Serve ``make_app()`` (called on the thread's own loop) until ``stop``."""

    def __init__(self, make_app: Callable[[], web.Application], *,
                 shutdown_timeout: float = 0.5) -> None:
        self._make_app = make_app
        self._shutdown_timeout = shutdown_timeout
        self._ready: Future[str] = Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self._make_app(), access_log=None,
                               shutdown_timeout=self._shutdown_timeout)
        try:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self._ready.set_result(f"http://127.0.0.1:{runner.addresses[0][1]}")
            await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():  # a start-up failure surfaces in the test
                self._ready.set_exception(exc)
            raise
        finally:
            await runner.cleanup()

    def start(self) -> str:
        """Start serving; the base URL."""
        self._thread.start()
        return self._ready.result(timeout=10)

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
