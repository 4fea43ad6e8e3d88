"""The IVR dialogue as a pure state machine: no I/O, no clock of its own.

Both fronts drive it the same way — `start(now)` when a call arrives, `step(state, digits)` after
each gather (digits=None on timeout) — and render each Turn in their own protocol: FastAGI
commands for Asterisk, TwiML for Twilio. The menu logic therefore cannot diverge between them.

A Turn is "play these prompts, then do this action". The action is Gather (wait for a key and
call `step` again) or a terminal one: ToQueue, ToVoicemail, Hangup.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ivr.menu import Menu, MenuOption
from ticketing import BusinessHours, format_opening

TIMEOUT = "t"  # path entry for "no key pressed"
PATH_SEP = "-"
_ENTRY = re.compile(r"^(t|[0-9*#]{1,8}|x)$")


class EngineError(ValueError):
    """The engine was driven wrongly (a step after the call was decided, or a corrupt state)."""


@dataclass(frozen=True)
class Prompt:
    name: str
    file: str
    text: str
    # no recording says this text (the administrator's wording): a front speaks `text` itself
    # (Twilio's <Say>, ivr.tts for Asterisk) and plays `file` only if it cannot
    spoken: bool = False


@dataclass(frozen=True)
class Gather:
    timeout_seconds: int
    max_digits: int = 1


@dataclass(frozen=True)
class ToQueue:
    option: MenuOption

    @property
    def queue(self) -> str:
        return self.option.queue

    @property
    def category(self) -> str | None:
        return self.option.category


@dataclass(frozen=True)
class ToVoicemail:
    callback_at: datetime  # tz-aware local time of the next opening
    max_seconds: int
    mailbox: str
    reason: str  # after_hours | queue_unavailable


@dataclass(frozen=True)
class Hangup:
    reason: str  # retries_exhausted


Action = Gather | ToQueue | ToVoicemail | Hangup


@dataclass(frozen=True)
class DialogState:
    """Everything the dialogue needs to continue: the caller's inputs so far.

    Every non-final input is a failed attempt, so the try count is len(path). Twilio carries this
    in the signed action URL; Asterisk keeps it in the AGI session.
    """

    path: tuple[str, ...] = ()
    finished: bool = False

    @property
    def tries(self) -> int:
        return len(self.path)

    def encode(self) -> str:
        return PATH_SEP.join(self.path)

    @classmethod
    def decode(cls, raw: str | None, *, max_tries: int) -> DialogState:
        if not raw:
            return cls()
        parts = tuple(raw.split(PATH_SEP))
        if len(parts) >= max_tries or not all(_ENTRY.match(p) for p in parts):
            raise EngineError(f"corrupt IVR state {raw[:40]!r}")
        return cls(path=parts)


@dataclass(frozen=True)
class Turn:
    prompts: tuple[Prompt, ...]
    action: Action
    state: DialogState

    @property
    def path(self) -> str:
        return self.state.encode()

    @property
    def final(self) -> bool:
        return not isinstance(self.action, Gather)


def _entry(digits: str | None) -> str:
    if digits is None or digits == "":
        return TIMEOUT
    d = digits.strip()
    return d if re.fullmatch(r"[0-9*#]{1,8}", d) else "x"


class IvrEngine:
    """One menu + one business-hours calendar; stateless between calls (state is passed in).

    `hours` may be a callable returning the current hours (the fronts pass one reading the
    administrator's edits, so a change of hours or after-hours message needs no restart)."""

    def __init__(self, menu: Menu, hours: BusinessHours | Callable[[], BusinessHours]) -> None:
        self.menu = menu
        self._hours = hours

    @property
    def hours(self) -> BusinessHours:
        h = self._hours
        return h if isinstance(h, BusinessHours) else h()

    def prompt(self, name: str, **fmt: str) -> Prompt:
        p = self.menu.prompts[name]
        return Prompt(name=name, file=p.file, text=p.text.format(**fmt) if fmt else p.text)

    def _gather(self, state: DialogState, *lead: Prompt) -> Turn:
        return Turn(
            prompts=(*lead, self.prompt("welcome")),
            action=Gather(timeout_seconds=self.menu.timeout_seconds),
            state=state,
        )

    def _voicemail(self, now: datetime, state: DialogState, reason: str, prompt: str) -> Turn:
        hours = self.hours
        when = hours.next_opening(now)
        said = self.prompt(prompt, callback=format_opening(when))
        if prompt == "closed" and hours.after_hours_message:
            # the administrator's wording (spoken by TTS; the recorded file is the old wording)
            text = hours.after_hours_message.replace("{callback}", format_opening(when))
            said = Prompt(name=said.name, file=said.file, text=text, spoken=True)
        return Turn(
            prompts=(said,),
            action=ToVoicemail(
                callback_at=when,
                max_seconds=self.menu.voicemail_max_seconds,
                mailbox=self.menu.voicemail_mailbox,
                reason=reason,
            ),
            state=DialogState(path=state.path, finished=True),
        )

    def start(self, now: datetime, *, force: str | None = None) -> Turn:
        """A new call. force='open'/'closed' overrides the calendar (dialplan override, tests)."""
        is_open = self.hours.is_open(now) if force not in ("open", "closed") else force == "open"
        if not is_open:
            return self._voicemail(now, DialogState(), "after_hours", "closed")
        return self._gather(DialogState())

    def step(self, state: DialogState, digits: str | None) -> Turn:
        """The caller pressed `digits` ('' or None: the gather timed out)."""
        if state.finished:
            raise EngineError("the call has already been routed")
        entry = _entry(digits)
        path = (*state.path, entry)
        option = self.menu.options.get(entry)
        if option is not None:
            return Turn(
                prompts=(self.prompt("transfer", label=option.label),),
                action=ToQueue(option),
                state=DialogState(path=path, finished=True),
            )
        nxt = DialogState(path=path)
        if nxt.tries >= self.menu.max_tries:
            done = DialogState(path=path, finished=True)
            if self.menu.on_exhausted == "operator":
                return Turn((self.prompt("to_operator"),), ToQueue(self.menu.operator), done)
            return Turn((self.prompt("goodbye"),), Hangup("retries_exhausted"), done)
        lead = self.prompt("no_input" if entry == TIMEOUT else "invalid")
        return self._gather(nxt, lead)

    def queue_unavailable(self, now: datetime, state: DialogState) -> Turn:
        """The queue could not take the call (no agents, full, timed out): voicemail instead."""
        return self._voicemail(now, state, "queue_unavailable", "busy")

    def after_recording(self) -> Turn:
        """Voicemail taken: thank the caller and hang up."""
        return Turn(
            (self.prompt("recorded"),),
            Hangup("voicemail_recorded"),
            DialogState(finished=True),
        )
