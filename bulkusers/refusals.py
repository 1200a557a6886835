"""Whether a server's gateway refusals (502, 503, 504) are overload or failures at random.

A gateway refuses requests for two reasons. Behind it, a server that cannot keep up has its
excess refused: with fewer requests in flight it answers as many a second as before, or, once
below what it serves at once, refuses no more. A flaky gateway (or a flaky node behind it)
fails a share of requests whatever their number: with fewer in flight, fewer answers a second
and the same share refused. Backing off helps the first and starves the second, so the first
back-off on refusals (more than REFUSED_SHARE of the latest answers) is a trial:

1. the limit halves, as for overload, and after SETTLE_S (rows refused before come back from
   their retries' waits) the answers a second and the share refused are measured over
   MEASURE_S. The refusals gone (or most answers refused: a server down): overload, the
   limit stays halved;
2. otherwise the limit goes back, and the same is measured there. Answers a second at half
   fewer by more than a quarter: failures at random. The limit stays, and from then on
   refusals show overload only above the share measured plus REFUSED_SHARE. As many:
   overload, and the limit halves again.

After a trial found overload, refusals above the half it tried lower the limit at once, with
no other trial, as a server's refusals of its excess should. While a trial runs, the limit
moves only as the trial sets it (latency is not read); a 429 or a timeout lowers it as ever,
and ends the trial without a verdict.

Pure logic: the caller reports answers and refusals with its own clock's times, and sets the
limit each step returns.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

#: How many of the latest answers the share of refusals is first taken over: a server that
#: cannot keep up shows within a round trip.
RECENT = 64
#: Gateway refusals are a sign of overload only when more than this share of the latest
#: RECENT answers were refusals (beyond the share found to fail at random, ``floor``): below
#: it they are the odd failure a retry mends, and backing off on each would sink the limit to
#: a few in flight (at 5 % random 503s: 4 of 64, and a twentieth of the throughput).
REFUSED_SHARE = 0.2
#: ... and more than this share of the latest LONGER answers: over 64 answers, a fifth
#: refused at random reaches two fifths now and then within minutes (four standard
#: deviations of 64), over 256 practically never 0.15 more (five of 256).
LONGER = 256
LONGER_SHARE = 0.15
#: The share of refusals is taken over at least this many answers: the first refusal of a
#: run is no share of one answer.
REFUSED_OVER = 20
#: A trial's step measures at least this many answers: a fifth refused at random is between
#: a tenth and three tenths of a hundred.
MEASURED_AT_LEAST = 100
#: Seconds a trial waits at each step before it measures: rows refused before wait 0.5 to
#: 1.5 s before their first retry (RetryPolicy's default), and while they come back the
#: answers a second say nothing settled.
SETTLE_S = 1.0
#: Seconds over which a trial measures each step (at least).
MEASURE_S = 0.5
#: Beyond this share of the latest answers refused, the server is down or overloaded beyond
#: doubt: no trial, and a trial that measures as much at half the limit finds overload.
MOST = 0.5
#: Answers a second at half the limit below this share of those at the limit again (half way
#: between as many, for overload, and half, for failures at random) show failures at random.
RANDOM_BELOW = 0.75
#: Failures at random keep the share refused at half the limit: at least half the share
#: before the trial (beyond the floor), less this much for the noise of a few hundred answers.
SHARE_NOISE = 0.05


#: Why a trial sets the limit (the summary's and --debug's words for its steps).
TRYING_AGAIN = "trying the limit again"
FOUND_OVERLOAD = "refusals: overload"


@dataclass(slots=True)
class _Step:
    """One step of a trial: when its measuring begins, and what it has measured since."""

    settled: float
    answers: int = 0
    refusals: int = 0

    def measured(self, now: float) -> tuple[float, float] | None:
        """Answers a second and the share refused, once measured long and much enough."""
        told = self.answers + self.refusals
        if now < self.settled + MEASURE_S or told < MEASURED_AT_LEAST:
            return None
        return self.answers / (now - self.settled), self.refusals / told


@dataclass(slots=True)
class _Trial:
    """A trial on refusals: the limit it began at and the share refused (of the latest
    RECENT) then, the step under way, and what the step at half the limit measured (answers
    a second and share refused) once it has."""

    limit: int
    share: float
    step: _Step
    at_half: tuple[float, float] | None = None


class _Latest:
    """Whether each of the latest ``size`` answers was a gateway refusal (1) or an answer (0),
    and how many were refusals, counted as they come: the share is asked for on every answer
    (``outage``, through the gate's admission of pool workers), never with a pass over
    them."""

    __slots__ = ("_marks", "refusals")

    def __init__(self, size: int) -> None:
        self._marks: deque[int] = deque(maxlen=size)
        self.refusals = 0

    def add(self, refused: int) -> None:
        """One more answer (``refused`` 1) or refusal; the oldest one drops out when full."""
        marks = self._marks
        if len(marks) == marks.maxlen:
            self.refusals -= marks[0]
        marks.append(refused)
        self.refusals += refused

    def share(self) -> float:
        """The share of them refused, taken over at least REFUSED_OVER."""
        return self.refusals / max(len(self._marks), REFUSED_OVER)


class GatewayRefusals:
    """The latest answers and refusals, and what they say about the refusals' cause."""

    def __init__(self) -> None:
        self._recent = _Latest(RECENT)
        self._longer = _Latest(LONGER)
        #: The share of answers refused at random (found by a trial).
        self.floor = 0.0
        self._trial: _Trial | None = None
        #: The last trial found overload above this limit (the half it tried): refusals
        #: there lower the limit without another trial (each costs seconds). At or below
        #: it, a trial may find failures at random after all (a busy client answers as many
        #: a second at half the limit).
        self._overload_above: float = math.inf

    def drop_trial(self) -> None:
        """End a trial under way without a verdict: the limit moved for another reason (a
        429, a timeout), or the run turns to other requests (from reading pages to writing
        rows), so what it measured says nothing about its own steps."""
        self._trial = None

    def judging(self) -> bool:
        """Whether a trial runs: the limit then stays as the trial sets it."""
        return self._trial is not None

    def outage(self) -> bool:
        """Whether most of the latest RECENT answers (taken over at least REFUSED_OVER) were
        refusals: the server is down, or overloaded beyond doubt."""
        return self.share() > MOST

    def share(self) -> float:
        """The share of the latest RECENT answers that were refusals, taken over at least
        REFUSED_OVER."""
        return self._recent.share()

    def show_overload(self) -> bool:
        """Whether the server may not keep up: beyond the share that fails at random, more
        than REFUSED_SHARE of the latest RECENT answers were refusals, and more than
        LONGER_SHARE of the latest LONGER."""
        floor = self.floor
        return (self.share() > REFUSED_SHARE + floor
                and self._longer.share() > LONGER_SHARE + floor)

    def begin(self, now: float, limit: int) -> bool:
        """Refusals show overload at ``limit``: start a trial (the caller halves the limit),
        unless the last trial found overload below this limit or most of the latest RECENT
        answers were refusals (then the caller backs off as for any overload)."""
        if limit > self._overload_above or self.outage():
            return False
        # Of the latest RECENT: the share of LONGER lags behind a limit that came down.
        self._trial = _Trial(limit, self.share(), _Step(now + SETTLE_S))
        return True

    def answered(self, now: float) -> tuple[int, str] | None:
        """An answer at ``now``. The limit to set, and why, when this ends a trial's step."""
        return self._told(now, 0)

    def refused(self, now: float) -> tuple[int, str] | None:
        """A gateway refusal (502, 503 or 504) at ``now``; what ``answered`` returns."""
        return self._told(now, 1)

    def _told(self, now: float, refused: int) -> tuple[int, str] | None:
        """An answer (``refused`` 0) or a refusal (1) at ``now``, kept and counted by the
        trial's step under way."""
        self._recent.add(refused)
        self._longer.add(refused)
        trial = self._trial
        if trial is None or now < trial.step.settled:
            return None
        if refused:
            trial.step.refusals += 1
        else:
            trial.step.answers += 1
        return self._judge(trial, now)

    def _judge(self, trial: _Trial, now: float) -> tuple[int, str] | None:
        """End a trial's step once it has measured long and much enough: the limit to set
        next, and why (None: the limit stays)."""
        measured = trial.step.measured(now)
        if measured is None:
            return None
        if trial.at_half is None:  # measured at half the limit
            trial.at_half = measured
            _, share = measured
            # A server refusing its excess, halved below what it serves at once, refuses no
            # more (beyond the floor): overload, no need to try the limit again.
            kept = share - self.floor >= (trial.share - self.floor) / 2 - SHARE_NOISE
            if not kept or share > MOST:
                return self._overload(trial, halve=False)
            trial.step = _Step(now + SETTLE_S)
            return trial.limit, TRYING_AGAIN
        self._trial = None
        rate, _ = measured
        rate_at_half, share_at_half = trial.at_half
        if rate_at_half >= rate * RANDOM_BELOW:
            return self._overload(trial, halve=True)  # as many answers with half in flight
        self.floor = share_at_half
        return None  # failures at random: the limit stays

    def _overload(self, trial: _Trial, *, halve: bool) -> tuple[int, str] | None:
        """End ``trial`` as overload: half its limit (``halve``: set it again), and no other
        trial above that half."""
        self._trial = None
        self._overload_above = trial.limit // 2
        return (max(1, trial.limit // 2), FOUND_OVERLOAD) if halve else None
