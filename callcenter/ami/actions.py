"""The console's PBX actions: callback originate, queue membership/pause, transfer, hangup.

Each returns an ActionResult (Asterisk said Success) or raises AmiActionError with Asterisk's own
message (Response: Error), AmiTimeout, or AmiNotConnected: never a silent None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callcenter.ami.connection import AmiConnection, AmiError
from callcenter.ami.handlers import fields_of


class AmiActionError(AmiError):
    def __init__(self, action: str, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(f"{action} failed: {message}")
        self.action = action
        self.message = message
        self.fields = fields or {}


@dataclass
class ActionResult:
    action: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


class AmiActions:
    def __init__(self, conn: AmiConnection, timeout: float | None = None) -> None:
        self.conn = conn
        self.timeout = timeout

    async def _do(self, action: dict[str, Any]) -> ActionResult:
        name = action["Action"]
        resp = await self.conn.send(action, timeout=self.timeout, as_list=False)
        f = fields_of(resp)
        if not resp.success:
            raise AmiActionError(name, f.get("message") or f.get("response", "Error"), f)
        return ActionResult(name, f.get("message", ""), f)

    async def originate_callback(
        self,
        endpoint: str,
        *,
        context: str,
        exten: str,
        priority: int = 1,
        caller_id: str | None = None,
        variables: dict[str, str] | None = None,
        timeout_ms: int = 30000,
    ) -> ActionResult:
        """Call `endpoint` (e.g. PJSIP/8001) and connect it to context/exten (e.g. the caller).

        Async: Asterisk answers "queued" at once and reports the outcome as OriginateResponse.
        """
        action: dict[str, Any] = {
            "Action": "Originate",
            "Channel": endpoint,
            "Context": context,
            "Exten": exten,
            "Priority": str(priority),
            "Timeout": str(timeout_ms),
            "Async": "true",
        }
        if caller_id:
            action["CallerID"] = caller_id
        if variables:
            action["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        return await self._do(action)

    async def queue_add(
        self,
        queue: str,
        interface: str,
        *,
        member_name: str | None = None,
        penalty: int = 0,
        paused: bool = False,
    ) -> ActionResult:
        action = {
            "Action": "QueueAdd",
            "Queue": queue,
            "Interface": interface,
            "Penalty": str(penalty),
            "Paused": "true" if paused else "false",
        }
        if member_name:
            action["MemberName"] = member_name
        return await self._do(action)

    async def queue_remove(self, queue: str, interface: str) -> ActionResult:
        return await self._do({"Action": "QueueRemove", "Queue": queue, "Interface": interface})

    async def queue_pause(
        self, interface: str, *, queue: str | None = None, reason: str | None = None
    ) -> ActionResult:
        """Pause in one queue, or in every queue when `queue` is None."""
        action = {"Action": "QueuePause", "Interface": interface, "Paused": "true"}
        if queue:
            action["Queue"] = queue
        if reason:
            action["Reason"] = reason
        return await self._do(action)

    async def queue_unpause(self, interface: str, *, queue: str | None = None) -> ActionResult:
        action = {"Action": "QueuePause", "Interface": interface, "Paused": "false"}
        if queue:
            action["Queue"] = queue
        return await self._do(action)

    async def redirect(
        self,
        channel: str,
        *,
        context: str,
        exten: str,
        priority: int = 1,
        extra_channel: str | None = None,
    ) -> ActionResult:
        """Transfer: send `channel` (and optionally its peer) to context/exten."""
        action = {
            "Action": "Redirect",
            "Channel": channel,
            "Context": context,
            "Exten": exten,
            "Priority": str(priority),
        }
        if extra_channel:
            action.update(
                ExtraChannel=extra_channel,
                ExtraContext=context,
                ExtraExten=exten,
                ExtraPriority=str(priority),
            )
        return await self._do(action)

    async def blind_transfer(self, channel: str, *, context: str, exten: str) -> ActionResult:
        """Blind transfer of the party bridged with `channel` (e.g. the agent's leg)."""
        return await self._do(
            {"Action": "BlindTransfer", "Channel": channel, "Context": context, "Exten": exten}
        )

    async def hangup(self, channel: str, cause: int = 16) -> ActionResult:
        return await self._do({"Action": "Hangup", "Channel": channel, "Cause": str(cause)})
