"""The guards that judge a whole plan before the first write: --max-changes and the prompt."""

from __future__ import annotations

from collections.abc import Callable

from bulkusers.errors import ConfigError, GuardTripped
from bulkusers.frozen import frozen
from bulkusers.plan import Preflight
from bulkusers.words import count, flag


@frozen
class Limit:
    """``--max-changes``: a number of writes, or a percentage of the directory's users."""

    count: int | None = None
    percent: float | None = None

    def __post_init__(self) -> None:
        if self.count is not None and (isinstance(self.count, bool) or self.count < 0):
            raise ConfigError(f"Limit(count={self.count!r}): a count of 0 or more")
        if self.percent is not None and not 0 <= self.percent <= 100:
            raise ConfigError(f"Limit(percent={self.percent!r}): a percentage from 0 to 100")

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Read "250" or "5%"; ValueError with a hint otherwise."""
        cleaned = text.strip()
        try:
            if cleaned.endswith("%"):
                percent = float(cleaned[:-1])
                if not 0 <= percent <= 100:
                    raise ValueError
                return cls(percent=percent)
            count = int(cleaned)
            if count < 0:
                raise ValueError
            return cls(count=count)
        except ValueError:
            raise ValueError(f"{flag('--max-changes')} {text!r} is neither a number of "
                             "changes nor a percentage of the directory from 0% to 100%; "
                             "give one such as 250 or 5%") from None

    @property
    def active(self) -> bool:
        """True when a limit is set."""
        return self.count is not None or self.percent is not None

    def allowed(self, directory_users: int) -> int | None:
        """The most writes allowed, or None for no limit."""
        if self.count is not None:
            return self.count
        if self.percent is not None:
            return int(directory_users * self.percent / 100)
        return None


def limit_refusal(plan: Preflight, limit: Limit, directory_users: int) -> str:
    """Why ``--max-changes`` refuses the plan ("" when it allows it)."""
    allowed = limit.allowed(directory_users)
    if allowed is None or plan.writes <= allowed:
        return ""
    shown = f"{limit.percent:g}% of {count(directory_users, 'user')} = {allowed}" \
        if limit.percent is not None else str(allowed)
    option = flag("--max-changes")
    return (f"the plan would change {count(plan.writes, 'user')}, more than {option} "
            f"allows ({shown}); nothing was sent. Check the input, or raise {option}")


Confirm = Callable[[str, Preflight], bool]


def check_confirmation(command: str, plan: Preflight, confirm: Confirm | None) -> None:
    """Ask before a destructive run; a 'no' aborts before any write."""
    if confirm is None or plan.destructive == 0:
        return
    if not confirm(command, plan):
        raise GuardTripped(f"{command} not confirmed; nothing was sent")
