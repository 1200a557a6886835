"""A list endpoint read a page at a time with ``skip``/``limit``: the pages asked for ahead,
concurrently, with a count of the items as a hint, and the pages in flight at the end waited
for, so that the server is never busier than the client's limit allows."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from bulkusers.answers import JSON
from bulkusers.client import SisenseClient, Trace
from bulkusers.errors import ServerUnavailable
from bulkusers.words import flag

UserDict = dict[str, Any]


def as_list(value: JSON, what: str) -> list[UserDict]:
    """The objects in a list answer; ServerUnavailable when the answer is not a list."""
    if not isinstance(value, list):
        raise ServerUnavailable(f"{what} did not answer a list; is {flag('--url')} a "
                                "Sisense server?")
    return [item for item in value if isinstance(item, dict)]


#: The largest page asked for. Pages grow past the caller's size only once a count says how
#: many items remain, so that the rest comes in about one page per request the limit lets
#: through (a few round trips for 100,000 users instead of 25). Sisense documents no maximum;
#: its own scripts read every user in one unpaged call, so this is modest.
MAX_PAGE_SIZE = 5000


@dataclass(slots=True)
class _Asked:
    """A page asked for: where it starts, how many items it asked for, and the request."""

    skip: int
    size: int
    answer: asyncio.Future[list[UserDict]]
    trace: Trace


async def pages(client: SisenseClient, path: str, page_size: int, params: Mapping[str, str],
                count_path: str | None = None) -> AsyncGenerator[list[UserDict], None]:
    """Every item of a list endpoint, a page at a time with ``skip``/``limit``, in order.

    The list gives no total, so the second page is asked for with the first (a directory of
    one page costs one request more, answered at the same time), and after that, as many
    pages ahead as have come back full so far (up to the client's concurrency): about twice
    as many each round trip. When ``count_path`` answers how many there are (a hint only:
    the end is still the first short page), the rest is asked for at once, in pages grown
    (up to MAX_PAGE_SIZE) so that about as many pages as the client lets through at once
    hold it, and none past the end. A page that comes back shorter than asked before the
    counted end means the server caps its pages (or items went since the count): the pages
    asked for after it are dropped and the rest is read from where it stopped, in pages of
    the size it gave. The pages asked for past the end are never more than the pages the
    directory has; those in flight are waited for, not cancelled: the server works on a
    request until it is done, and the next ones must not find it busier than the limit
    allows.
    """
    async def page_at(skip: int, size: int, trace: Trace) -> list[UserDict]:
        query = {**params, "skip": str(skip), "limit": str(size)}
        answer = await client.request("GET", path, params=query, trace=trace)
        return as_list(answer, f"GET {path}")

    def ask(skip: int, size: int) -> _Asked:
        trace = Trace()
        return _Asked(skip, size, asyncio.ensure_future(page_at(skip, size, trace)), trace)

    client.hold_for_reads()  # the latency of pages says more of the client than the server
    ahead = collections.deque([ask(0, page_size), ask(page_size, page_size)])
    count_trace = Trace()
    counting = (asyncio.ensure_future(_count(client, count_path, count_trace))
                if count_path else None)
    trusted = counting is not None
    size, next_skip, full_pages, finished = page_size, 2 * page_size, 0, False
    def ask_ahead(wanted: int) -> None:
        nonlocal next_skip
        while len(ahead) < min(wanted, client.max_concurrency):
            ahead.append(ask(next_skip, size))
            next_skip += size

    def wanted_with(total: int) -> int:
        # Every page up to the one that will come back short, grown so that about as many
        # as the limit lets through at once hold the rest.
        nonlocal size
        rest = total - next_skip  # below 0 once the pages asked for pass the end
        size = min(MAX_PAGE_SIZE, max(size, -(-rest // client.in_flight_limit)))
        return len(ahead) + max(0, rest // size + 1)

    try:
        previous_ids: set[str] = set()
        while ahead:
            asked = ahead.popleft()
            if (full_pages and trusted and counting is not None and not counting.done()
                    and not asked.answer.done()):
                # The count may come first: the rest is then asked for at once, not a
                # round trip later when this page is in.
                either: list[asyncio.Future[Any]] = [asked.answer, counting]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                total = counting.result() if counting.done() else None
                if total is not None and total >= next_skip and not asked.answer.done():
                    ask_ahead(wanted_with(total))
            page = await asked.answer
            got = len(page)
            page_ids = {str(item.get("_id", "")) for item in page}
            # Some Sisense lists repeat an item on every page; comparing with the previous
            # page drops those repeats while memory stays a few pages.
            if previous_ids & page_ids:
                page = [item for item in page if str(item.get("_id", "")) not in previous_ids]
            if page:
                yield page
            if got < asked.size and got and trusted and counting and not counting.done():
                # Is it the end, or the most the server gives per page? The count, asked
                # for with the first pages, says: wait for it.
                await asyncio.wait([counting])
            total = counting.result() if trusted and counting and counting.done() else None
            if got < asked.size:
                if not (got and total is not None and asked.skip + got < total):
                    finished = True
                    return
                # Short before the counted end: the server gave what it allows per page.
                await _drop(ahead)
                trusted = False
                size, next_skip = got, asked.skip + got
            previous_ids = page_ids
            # As many pages ahead as came back full so far: about twice as many each round
            # trip; or, with a count, every page up to the one that will come back short.
            full_pages += 1
            wanted = full_pages
            if total is not None and trusted and total < asked.skip + asked.size:
                trusted = False  # a full page at or past the counted end: the count is wrong
            elif total is not None and trusted:
                wanted = wanted_with(total)
            ask_ahead(wanted)
    finally:
        for asked in ahead:
            if not (finished and asked.trace.in_flight):
                asked.answer.cancel()
        # The count in flight is waited for too: cancelled, it would leave the server one
        # request busier than the limit allows while the next ones go out.
        if counting is not None and not (finished and count_trace.in_flight):
            counting.cancel()
        if counting is not None:
            await asyncio.gather(counting, return_exceptions=True)
        await asyncio.gather(*(asked.answer for asked in ahead), return_exceptions=True)


async def _drop(ahead: collections.deque[_Asked]) -> None:
    """Give up the pages asked for: those waiting are cancelled, those in flight waited for
    (the server is working on them) and their items ignored."""
    for asked in ahead:
        if not asked.trace.in_flight:
            asked.answer.cancel()
    await asyncio.gather(*(asked.answer for asked in ahead), return_exceptions=True)
    ahead.clear()


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
