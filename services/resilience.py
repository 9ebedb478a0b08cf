"""Circuit breakers for asyncio: every outside call goes through one.

Sits between the use cases (indexing, search) and the stores/embedder. pybreaker holds
the state machine and its listeners, but it has no asyncio support (decorating an
``async def`` counts nothing; ``call_async`` is Tornado's), so ``Breaker.call`` does the
asyncio part:

- admission first: an open breaker refuses at once with ``BreakerOpenError`` (carrying
  how long until it lets a trial through); half-open admits exactly one trial call;
- every call runs under ``asyncio.timeout``; a timeout counts as a failure;
- retriable failures count; business errors (non-retriable ``RagstreamError``: a bad
  request, a rejected input) do not trip it, and cancellation counts as nothing at all;
- the outcome is recorded through ``CircuitBreaker.calling()``, so pybreaker's counters,
  transitions and listeners behave exactly as documented.

Fleet following (``follow_open``/``follow_closed``, driven by ``ragstream.breaker_follow``
from other workers' events; this module knows nothing of Kafka): a peer's opening opens
this breaker at once, dated from the peer's event, so it is trusted for at most one reset
timeout; a peer's successful trial moves an open breaker to half-open (the next call is the
trial). Our own success closes a breaker a peer opened, and a peer whose opening our own
trial disproved is not followed again until it reports ``closed`` itself (the flapping
case: a dependency down for one worker only). Every change happens under pybreaker's
lock, and an ``open`` refusal carries ``wake``, which returns as soon as the breaker
admits calls again, so a held stream resumes without sleeping out the old reset timeout.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker
import structlog

from streams import metrics
from streams.errors import BreakerOpenError, DependencyError, RagstreamError
from streams.scrub import scrub_text

__all__ = [
    "Breaker",
    "BreakerStatus",
    "Guarded",
    "Transition",
    "get_breaker_status",
    "is_business_error",
]

T = TypeVar("T")
log = structlog.get_logger(__name__)


def is_business_error(exc: BaseException) -> bool:
    """Errors that say the request is wrong, not that the dependency is sick."""
    return isinstance(exc, RagstreamError) and not exc.retriable


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of one breaker."""

    breaker: str
    old: str
    new: str
    at: datetime
    fail_counter: int
    error: str | None
    reason: str = "local"
    """``local`` (our own calls) or ``peer`` (followed another worker's event)."""


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """What ``get_breaker_status`` reports per breaker."""

    name: str
    state: str
    fail_counter: int
    last_failure: str | None
    last_failure_at: datetime | None
    allows_calls: bool


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: Breaker) -> None:
        self._owner = owner

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        old = getattr(old_state, "name", str(old_state))
        new = getattr(new_state, "name", str(new_state))
        self._owner._notify(old, new)


class Breaker:
    """A named pybreaker breaker with an asyncio ``call`` and timeouts."""

    def __init__(
        self,
        name: str,
        *,
        fail_max: int,
        reset_timeout_s: float,
        call_timeout_s: float,
        unavailable: type[DependencyError] = DependencyError,
        on_transition: Iterable[Callable[[Transition], None]] = (),
    ) -> None:
        self.name = name
        self.call_timeout_s = call_timeout_s
        self._unavailable = unavailable
        self._callbacks = list(on_transition)
        self._trial_in_flight = False
        self._reason = "local"  # of the transition being made (read by _notify)
        self._peer_opened: str | None = None  # the peer whose event opened us, while open
        self._distrusted: set[str] = set()  # peers whose opening our own trial disproved
        self._admitting: asyncio.Event | None = None
        self._admitting_loop: asyncio.AbstractEventLoop | None = None
        self.failures_total = 0
        self.last_failure: str | None = None
        self.last_failure_at: datetime | None = None
        self.cb = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            exclude=[is_business_error],
            listeners=[_Listener(self)],
            name=name,
            throw_new_error_on_trip=False,
        )
        metrics.breaker_state(name, self.state)

    def subscribe(self, callback: Callable[[Transition], None]) -> None:
        """Call ``callback`` (synchronously) on every state change."""
        self._callbacks.append(callback)

    def _notify(self, old: str, new: str) -> None:
        metrics.breaker_transition(self.name, old, new)
        if new == pybreaker.STATE_CLOSED:
            if self._peer_opened is not None and self._reason == "local":
                self._distrusted.add(self._peer_opened)  # our own success proved the peer wrong
            self._peer_opened = None
        elif new == pybreaker.STATE_OPEN and self._reason == "local":
            self._peer_opened = None  # our own trial failed: the opening is ours now
        self._wake(new != pybreaker.STATE_OPEN)
        event = Transition(
            self.name,
            old,
            new,
            datetime.now(UTC),
            self.cb.fail_counter,
            self.last_failure,
            self._reason,
        )
        for callback in self._callbacks:
            callback(event)

    def _wake(self, admitting: bool) -> None:
        """Set (or clear) the event ``wake`` waits on, from any thread."""
        event, loop = self._admitting, self._admitting_loop
        if event is None or loop is None or loop.is_closed():
            return
        action = event.set if admitting else event.clear
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action()
        else:
            loop.call_soon_threadsafe(action)

    async def wake(self) -> None:
        """Return once the breaker is no longer open (a peer's success may end it early)."""
        loop = asyncio.get_running_loop()
        if self._admitting is None or self._admitting_loop is not loop:
            self._admitting, self._admitting_loop = asyncio.Event(), loop
        if self.state != pybreaker.STATE_OPEN:
            return
        self._admitting.clear()
        await self._admitting.wait()

    def follow_open(self, peer: str, at: datetime) -> bool:
        """A peer's breaker opened at ``at``: open ours too, until ``at`` + reset timeout.

        Not when ours is not closed, the event is already older than the reset timeout, or
        our own trial disproved this peer's last opening (see the module docstring).
        """
        with self.cb._lock:
            if self.state != pybreaker.STATE_CLOSED or peer in self._distrusted:
                return False
            if datetime.now(UTC) - at >= timedelta(seconds=self.cb.reset_timeout):
                return False  # stale
            self._reason = "peer"
            try:
                self._peer_opened = peer
                self.cb._state_storage.opened_at = at  # set first: listeners see the deadline
                self.cb.open()
                self.cb._state_storage.opened_at = at
            finally:
                self._reason = "local"
            return True

    def follow_closed(self, peer: str) -> bool:
        """A peer's trial succeeded: trust it again, and let our next call be a trial."""
        with self.cb._lock:
            self._distrusted.discard(peer)
            if self._peer_opened == peer:
                self._peer_opened = None  # it recovered: its opening was right, not disproved
            if self.state != pybreaker.STATE_OPEN:
                return False
            self._reason = "peer"
            try:
                self.cb.half_open()
            finally:
                self._reason = "local"
            return True

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        return str(self.cb.current_state)

    def _retry_after_s(self) -> float:
        opened_at = self.cb._state_storage.opened_at
        if opened_at is None:
            return 0.0
        remaining = opened_at + timedelta(seconds=self.cb.reset_timeout) - datetime.now(UTC)
        return max(remaining.total_seconds(), 0.0)

    def _admit(self) -> bool:
        """Let the call through or raise ``BreakerOpenError``; True when it is the trial."""
        state = self.state
        if state == pybreaker.STATE_CLOSED:
            return False
        if state == pybreaker.STATE_OPEN:
            wait = self._retry_after_s()
            if wait > 0:
                raise BreakerOpenError(self.name, retry_after_s=wait, wake=self.wake)
            self.cb.half_open()
        if self._trial_in_flight:
            raise BreakerOpenError(self.name, retry_after_s=0.5)
        self._trial_in_flight = True
        return True

    def _record(self, exc: BaseException | None) -> None:
        if exc is None and self._peer_opened is not None:
            with self.cb._lock:
                if self.state == pybreaker.STATE_OPEN and self._peer_opened is not None:
                    self.cb.close()  # our own call succeeded: the peer's opening is not ours
                    return
        try:
            with self.cb.calling():
                if exc is not None:
                    raise exc
        except pybreaker.CircuitBreakerError:
            pass  # opened by a concurrent call meanwhile: nothing to record
        except BaseException as raised:
            if raised is not exc:
                raise

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` under this breaker with the call timeout."""
        trial = self._admit()
        try:
            async with asyncio.timeout(self.call_timeout_s):
                result = await fn()
        except asyncio.CancelledError:
            raise  # neither success nor failure
        except TimeoutError as exc:
            error = self._unavailable(f"{self.name}: no answer within {self.call_timeout_s}s")
            self._failed(error)
            raise error from exc
        except BaseException as exc:
            if not is_business_error(exc):
                self._failed(exc)
            else:
                self._record(exc)
            raise
        else:
            self._record(None)
            return result
        finally:
            if trial:
                self._trial_in_flight = False

    def _failed(self, exc: BaseException) -> None:
        self.last_failure = scrub_text(f"{type(exc).__name__}: {str(exc)[:300]}")
        self.last_failure_at = datetime.now(UTC)
        self.failures_total += 1
        self._record(exc)
        log.info(
            "breaker_call_failed",
            breaker=self.name,
            state=self.state,
            fail_counter=self.cb.fail_counter,
            error=self.last_failure,
        )

    def status(self) -> BreakerStatus:
        """State, counters and whether a call would be let through now."""
        state = self.state
        allows = (
            state == pybreaker.STATE_CLOSED
            or (state == pybreaker.STATE_OPEN and self._retry_after_s() == 0)
            or (state == pybreaker.STATE_HALF_OPEN and not self._trial_in_flight)
        )
        return BreakerStatus(
            self.name, state, self.cb.fail_counter, self.last_failure, self.last_failure_at, allows
        )


def get_breaker_status(
    breakers: Mapping[str, Breaker] | Iterable[Breaker],
) -> dict[str, BreakerStatus]:
    """State, fail counter, last failure and whether calls are allowed, per breaker name."""
    items = breakers.values() if isinstance(breakers, Mapping) else breakers
    return {breaker.name: breaker.status() for breaker in items}


class Guarded:
    """A proxy whose coroutine methods all run through one breaker."""

    def __init__(
        self, inner: Any, breaker: Breaker, *, unguarded: Iterable[str] = ("aclose",)
    ) -> None:
        self._inner = inner
        self._breaker = breaker
        self._unguarded = frozenset(unguarded)

    @property
    def breaker(self) -> Breaker:
        """The breaker in front of the wrapped object."""
        return self._breaker

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in self._unguarded or not inspect.iscoroutinefunction(attr):
            return attr

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            return await self._breaker.call(lambda: attr(*args, **kwargs))

        guarded.__name__ = name
        return guarded
