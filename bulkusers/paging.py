"""A list endpoint read a page at a time with ``skip``/``limit``: the pages asked for ahead,
concurrently, with a count of the items as a hint, and the pages in flight at the end waited
for, so that the server is never busier than the client's limit allows."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bulkusers.client import JSON, SisenseClient, Trace
from bulkusers.errors import ServerUnavailable

UserDict = dict[str, Any]


def as_list(value: JSON, what: str) -> list[UserDict]:
    """The objects in a list answer; ServerUnavailable when the answer is not a list."""
    if not isinstance(value, list):
        raise ServerUnavailable(f"{what} did not answer a list; is --url a Sisense server?")
    return [item for item in value if isinstance(item, dict)]


async def pages(client: SisenseClient, path: str, page_size: int, params: Mapping[str, str],
                count_path: str | None = None) -> AsyncIterator[list[UserDict]]:
    """Every item of a list endpoint, a page at a time with ``skip``/``limit``, in order.

    The list gives no total, so the second page is asked for with the first (a directory of
    one page costs one request more, answered at the same time), and after that, as many
    pages ahead as have come back full so far (up to the client's concurrency): about twice
    as many each round trip. When ``count_path`` answers how many there are (a hint only:
    the end is still the first short page), the pages up to that end are asked for at once
    and none past it. The pages asked for past the end are never more than the pages the
    directory has; those in flight are waited for, not cancelled: the server works on a
    request until it is done, and the next ones must not find it busier than the limit
    allows.
    """
    async def page_at(skip: int, trace: Trace) -> list[UserDict]:
        query = {**params, "skip": str(skip), "limit": str(page_size)}
        answer = await client.request("GET", path, params=query, trace=trace)
        return as_list(answer, f"GET {path}")

    def ask(skip: int) -> tuple[asyncio.Future[list[UserDict]], Trace]:
        trace = Trace()
        return asyncio.ensure_future(page_at(skip, trace)), trace

    client.hold_for_reads()  # the latency of pages says more of the client than the server
    ahead = collections.deque([ask(0), ask(page_size)])
    count_trace = Trace()
    counting = (asyncio.ensure_future(_count(client, count_path, count_trace))
                if count_path else None)
    trusted = counting is not None
    next_skip, full_pages, finished = 2 * page_size, 0, False
    try:
        previous_ids: set[str] = set()
        while ahead:
            page = await ahead.popleft()[0]
            full = len(page) >= page_size
            page_ids = {str(item.get("_id", "")) for item in page}
            # Some Sisense lists repeat an item on every page; comparing with the previous
            # page drops those repeats while memory stays a few pages.
            if previous_ids & page_ids:
                page = [item for item in page if str(item.get("_id", "")) not in previous_ids]
            if page:
                yield page
            if not full:
                finished = True
                return
            previous_ids = page_ids
            # As many pages ahead as came back full so far: about twice as many each round
            # trip; or, with a count, every page up to the one that will come back short.
            full_pages += 1
            wanted = full_pages
            total = counting.result() if trusted and counting and counting.done() else None
            if total is not None and total < full_pages * page_size:
                trusted = False  # a full page at or past the counted end: the count is wrong
            elif total is not None:
                wanted = len(ahead) + max(0, (total - next_skip) // page_size + 1)
            while len(ahead) < min(wanted, client.max_concurrency):
                ahead.append(ask(next_skip))
                next_skip += page_size
    finally:
        for task, trace in ahead:
            if not (finished and trace.in_flight):
                task.cancel()
        # The count in flight is waited for too: cancelled, it would leave the server one
        # request busier than the limit allows while the next ones go out.
        if counting is not None and not (finished and count_trace.in_flight):
            counting.cancel()
        if counting is not None:
            await asyncio.gather(counting, return_exceptions=True)
        await asyncio.gather(*(task for task, _ in ahead), return_exceptions=True)


async def _count(client: SisenseClient, path: str, trace: Trace) -> int | None:
    """How many items ``path`` says there are (``{"count": N}``), or None: a hint only, so
    whatever goes wrong with it (an old server without it, an error) leaves paging as it is."""
    try:
        answer = await client.request("GET", path, trace=trace)
    except Exception:  # a hint: paging works without it
        return None
    count = answer.get("count") if isinstance(answer, dict) else None
    return count if isinstance(count, int) and count >= 0 else None


async def items(client: SisenseClient, path: str, page_size: int,
                params: Mapping[str, str]) -> AsyncIterator[UserDict]:
    """Every item of a list endpoint, one at a time (see ``pages``)."""
    async for page in pages(client, path, page_size, params):
        for item in page:
            yield item
