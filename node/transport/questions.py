"""Questions to one peer (a certificate verification, a revocation-list pull), gathered into
``Exchange`` frames: many questions, one signature, one reply frame.

Rules kept here:
- No timer: a question goes at once when a frame may leave; while ``FRAMES_IN_FLIGHT``
  frames await their replies, the questions that arrive meanwhile wait and leave together in
  the next frame, up to ``QUESTIONS_PER_FRAME`` and the frame's byte limit (a lone larger
  question goes alone). So a lone question is never held up, and a burst costs the peer a
  few frames instead of one each.
- Each asker gets its own reply as soon as its frame's reply arrives. An asker out of time
  stops waiting (``PeerUnavailable``); its question is dropped if it has not left yet, and
  its late reply if it has.
- A question whose frame was lost with its stream (the connection broke before the reply)
  is sent once more, byte for byte the same, on a fresh stream, while its asker still
  waits: the same message id and digest, so the peer answers it from its inbox with the
  reply it stored the first time and nothing it does happens twice (a verification's usage
  record). A frame that ran out of time is not sent again: its askers have given up.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from node.transport.errors import PeerUnavailable

QUESTIONS_PER_FRAME: Final = 256
FRAMES_IN_FLIGHT: Final = 2
SEND_ATTEMPTS: Final = 2
"""A question is sent at most this often: once, and once more if its stream broke."""

Exchange = Callable[[list[bytes]], Awaitable[list[tuple[bytes, bytes]]]]
"""Sends one frame of messages and returns, per message, its reply and the message as sent
(both Envelopes); raises a transport error (``PeerUnavailable``, ``SignedRefusal``)."""


@dataclass(eq=False)
class _Question:
    message: bytes
    answer: asyncio.Future[tuple[bytes, bytes]]
    deadline: float
    """Loop time after which its asker no longer waits."""
    attempts: int = field(default=0)


class QuestionFrames:
    """The questions waiting to go to one peer, and the frames they go in."""

    def __init__(
        self,
        peer: str,
        exchange: Exchange,
        *,
        frame_bytes: int,
        per_frame: int = QUESTIONS_PER_FRAME,
        in_flight: int = FRAMES_IN_FLIGHT,
    ) -> None:
        self._peer = peer
        self._exchange = exchange
        self._frame_bytes = frame_bytes
        self._per_frame = per_frame
        self._slots = asyncio.Semaphore(in_flight)
        self._waiting: deque[_Question] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._frames: set[asyncio.Task[None]] = set()

    async def ask(self, message: bytes, *, timeout: float) -> tuple[bytes, bytes]:
        """Send ``message`` in the next frame that leaves; return its reply and the message
        as sent (both Envelopes). Raises ``PeerUnavailable`` (out of time, or the peer could
        not be reached), or the transport's refusal of the frame."""
        loop = asyncio.get_running_loop()
        question = _Question(message, loop.create_future(), loop.time() + timeout)
        self._queue(question)
        try:
            async with asyncio.timeout_at(question.deadline):
                return await question.answer
        except TimeoutError as error:
            raise PeerUnavailable(self._peer, "no reply before the deadline") from error

    def _queue(self, question: _Question) -> None:
        self._waiting.append(question)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        """Send what waits, a frame at a time, as frame slots come free."""
        while self._waiting:
            await self._slots.acquire()
            frame = self._take()
            if not frame:
                self._slots.release()
                continue
            task = asyncio.ensure_future(self._answer(frame))
            self._frames.add(task)
            task.add_done_callback(self._frames.discard)

    def _take(self) -> list[_Question]:
        """The next frame's questions: those still awaited, in order, within the bounds."""
        frame: list[_Question] = []
        size = 0
        while self._waiting and len(frame) < self._per_frame:
            question = self._waiting[0]
            if question.answer.done():
                self._waiting.popleft()
                continue
            if frame and size + len(question.message) > self._frame_bytes:
                break
            frame.append(self._waiting.popleft())
            size += len(question.message)
        return frame

    async def _answer(self, frame: list[_Question]) -> None:
        """One frame out and its replies handed to their askers; the frame's slot is freed
        whatever happens."""
        for question in frame:
            question.attempts += 1
        try:
            async with asyncio.timeout_at(max(q.deadline for q in frame)):
                replies = await self._exchange([q.message for q in frame])
        except TimeoutError:
            self._fail(frame, PeerUnavailable(self._peer, "no reply before the deadline"))
        except asyncio.CancelledError:
            self._fail(frame, PeerUnavailable(self._peer, "channel closed"))
            raise
        except PeerUnavailable as error:
            again = [q for q in frame if q.attempts < SEND_ATTEMPTS and not q.answer.done()]
            self._fail([q for q in frame if q not in again], error)
            for question in again:
                self._queue(question)
        except Exception as error:  # a refused frame, or a failure of our own: every asker hears
            self._fail(frame, error)
        else:
            for question, replied in zip(frame, replies, strict=True):
                if not question.answer.done():
                    question.answer.set_result(replied)
        finally:
            self._slots.release()

    @staticmethod
    def _fail(frame: list[_Question], error: Exception) -> None:
        for question in frame:
            if not question.answer.done():
                question.answer.set_exception(error)

    def close(self) -> None:
        """Stop sending: every waiting asker hears the peer is closed."""
        closed = PeerUnavailable(self._peer, "channel closed")
        for task in (self._sender, *self._frames):
            if task is not None:
                task.cancel()
        self._fail(list(self._waiting), closed)
        self._waiting.clear()
