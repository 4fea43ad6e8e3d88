"""The generic signed HTTP SMS gateway (settings.sms_gateway = "http").

The kind Chinese SMS providers offer (and an in-house relay can implement): one JSON POST per
message to settings.sms_http_url, signed with a shared secret.

Request:  POST <sms_http_url>, Content-Type: application/json; charset=utf-8
          {"to": "+8613800138000", "content": "…", "sign_name": "<sms_http_sign_name>",
           "request_id": "dxe-<outbox id>"}       (request_id: the provider may de-duplicate on it)
Headers:  X-SMS-Key: <sms_http_key_id>        X-SMS-Timestamp: <unix seconds>
          X-SMS-Nonce: <random hex>           X-SMS-Signature: <hex HMAC-SHA256>
Signature = HMAC-SHA256(sms_http_secret, "<timestamp>\\n<nonce>\\n" + the exact body bytes).
Answer:   2xx with JSON {"code": "OK" | 0, "message_id": "…"} is sent; a 2xx whose `code` is
          anything else, or a 4xx, is a failure (not retried); 429, 5xx and network errors are
          transient (the row goes back to pending, RQ retries).

The secret never travels through Redis: the worker reads CALLCENTER_SMS_HTTP_SECRET from its own
environment, as with Twilio's token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx

SUCCESS_CODES = ("OK", "ok", "0", 0, 200, "200")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    transient: bool
    provider_id: str | None = None
    error: str | None = None


def sign(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The request's signature (see the module docstring)."""
    msg = f"{timestamp}\n{nonce}\n".encode() + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def build_request(
    key_id: str | None,
    secret: str,
    sign_name: str | None,
    outbox_id: int,
    to: str,
    content: str,
    *,
    now: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one message's POST."""
    payload: dict[str, Any] = {
        "to": to,
        "content": content,
        "sign_name": sign_name,
        "request_id": f"dxe-{outbox_id}",
    }
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(now if now is not None else time.time()))
    nonce = secrets.token_hex(12)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-SMS-Key": key_id or "",
        "X-SMS-Timestamp": timestamp,
        "X-SMS-Nonce": nonce,
        "X-SMS-Signature": sign(secret, timestamp, nonce, body),
    }
    return body, headers


def send(
    client: httpx.Client,
    url: str,
    key_id: str | None,
    secret: str,
    sign_name: str | None,
    outbox_id: int,
    to: str,
    content: str,
) -> Outcome:
    """POST one message; what happened, in the terms the outbox records."""
    body, headers = build_request(key_id, secret, sign_name, outbox_id, to, content)
    try:
        resp = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as e:
        return Outcome(False, True, error=f"sms gateway unreachable: {type(e).__name__}: {e}")
    if resp.status_code == 429 or resp.status_code >= 500:
        return Outcome(False, True, error=f"sms gateway {resp.status_code}: {resp.text[:200]}")
    if resp.status_code >= 300:
        return Outcome(False, False, error=f"sms gateway {resp.status_code}: {resp.text[:200]}")
    try:
        data = resp.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    code = data.get("code", "OK")
    if code not in SUCCESS_CODES:
        message = data.get("message") or data.get("msg") or ""
        return Outcome(False, False, error=f"sms gateway refused: {code} {message}"[:1000])
    ref = data.get("message_id") or data.get("biz_id") or data.get("id")
    return Outcome(True, False, provider_id=str(ref)[:64] if ref is not None else None)
