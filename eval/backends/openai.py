"""Any OpenAI-compatible ``/chat/completions`` server (vLLM serving stage two's export, or a hosted API).

Plain ``urllib`` (no client package): one POST per item, the image as a base64 JPEG data URL part
before the question, ``temperature`` 0, a bounded thread pool for concurrency. Per request:

- connection failures, timeouts and HTTP 408/409/425/429/5xx are retried up to ``max_retries``
  times, waiting ``backoff_s * 2**attempt`` seconds (at most ``MAX_BACKOFF_S``; a ``Retry-After``
  header within that bound is honoured);
- any other HTTP status, a reply that is not JSON, or JSON without ``choices[0].message.content``
  is that item's error at once (retrying would get the same answer).

The API key comes from ``api_key`` or the ``OPENAI_API_KEY`` environment variable; it is sent as a
bearer token and never written to results or reports. ``timeout_s`` bounds each socket operation.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from eval.backends.base import Backend, Item, Result, split_by_image
from ial_core.config import option

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
_SNIPPET = 200


@dataclass
class OpenAIOptions:
    base_url: str = option("http://127.0.0.1:8000/v1", "OpenAI-compatible API root (vLLM: "
                                                       "http://HOST:PORT/v1)")
    api_key: str | None = option(None, "API key (default: the OPENAI_API_KEY environment variable; "
                                       "none for local vLLM)")
    concurrency: int = option(8, "requests in flight at once")
    timeout_s: float = option(60.0, "seconds each socket operation may take")
    max_retries: int = option(3, "retries of a request after a connection error, timeout, 429 or 5xx")
    backoff_s: float = option(1.0, "first retry delay; doubles each retry")


class OpenAIBackend(Backend):
    kind = "openai"
    target_flag = "--model NAME"

    @classmethod
    def flag_targets(cls, cfg) -> list[str]:
        return [cfg.model]

    @classmethod
    def split_target(cls, target: str) -> tuple[str, str | None]:
        """``MODEL@https://host/v1`` names a server other than ``--base-url``."""
        m = re.fullmatch(r"(.+?)@(https?://.+)", target)
        return (m.group(1), m.group(2)) if m else (target, None)

    @classmethod
    def from_config(cls, target, cfg, *, base_url, cache_dir) -> OpenAIBackend:
        return cls(target, max_tokens=cfg.max_new_tokens, options=cfg.openai_options(base_url))

    def __init__(self, model: str, *, max_tokens: int, options: OpenAIOptions):
        self.model, self.max_tokens, self.options = model, max_tokens, options
        self.url = options.base_url.rstrip("/") + "/chat/completions"
        self._key = options.api_key or os.environ.get("OPENAI_API_KEY") or None

    def fingerprint(self) -> dict:
        return {"kind": self.kind, "model": self.model, "url": self.url,
                "max_tokens": self.max_tokens}

    def generate(self, items: Sequence[Item]) -> Iterator[Result]:
        todo, refused = split_by_image(items)
        yield from refused
        if not todo:
            return
        pool = ThreadPoolExecutor(max_workers=max(1, self.options.concurrency),
                                  thread_name_prefix="qa-openai")
        try:
            futures = [pool.submit(self._answer, item) for item in todo]
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    # ---- one item (runs in a worker thread; never raises) ---------------------------------------

    def _answer(self, item: Item) -> Result:
        try:
            body = json.dumps(self._payload(item)).encode("utf-8")
        except Exception as exc:  # noqa: BLE001 - an unreadable image is this item's error
            return Result(item.id, error=f"cannot read image {item.image}: {exc}")
        last = "no attempt made"
        attempts = max(0, self.options.max_retries) + 1
        for attempt in range(attempts):
            wait = None
            try:
                reply = self._post(body)
            except urllib.error.HTTPError as exc:
                detail = _snippet(_read_quietly(exc))
                last = f"HTTP {exc.code} from {self.url}: {detail}"
                if exc.code not in RETRY_STATUS:
                    return Result(item.id, error=last)
                wait = _retry_after(exc.headers)
            except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, timeouts,
                # resets, dropped connections, truncated bodies
                reason = getattr(exc, "reason", exc)
                last = f"cannot reach {self.url}: {type(exc).__name__}: {reason}"
            else:
                return _parse_reply(item.id, reply)
            if attempt + 1 < attempts:
                delay = min(MAX_BACKOFF_S, self.options.backoff_s * 2 ** attempt)
                time.sleep(min(MAX_BACKOFF_S, wait) if wait is not None else delay)
        return Result(item.id, error=f"{last} (gave up after {attempts} attempts)")

    def _payload(self, item: Item) -> dict:
        url = "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(item.image)).decode("ascii")
        return {"model": self.model, "temperature": 0, "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": item.prompt}]}]}

    def _post(self, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.options.timeout_s) as response:
            return response.read()


def jpeg_bytes(path) -> bytes:
    """The file itself when it is an upright RGB or grey JPEG, else the image re-encoded as one
    (CMYK JPEGs, PNGs, 16-bit images and photos with an EXIF orientation other than 1 turned
    upright and converted as in training, :func:`ial_core.images.open_rgb`; a server need not
    apply EXIF itself). A file that does not decode is refused here, so the server never gets it."""
    from ial_core.images import open_rgb

    with open(path, "rb") as f:
        data = f.read()
    image = open_rgb(path)
    if data[:3] == b"\xff\xd8\xff" and _jpeg_mode(data) in (("RGB", 1), ("L", 1)):
        return data
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _jpeg_mode(data: bytes) -> tuple[str, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.mode, im.getexif().get(0x0112, 1) or 1     # mode, EXIF orientation


def _parse_reply(item_id: str, raw: bytes) -> Result:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Result(item_id, error=f"server reply is not JSON: {_snippet(raw)}")
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return Result(item_id, error=f"reply has no choices[0].message.content: {_snippet(raw)}")
    if isinstance(content, list):        # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        return Result(item_id, error=f"reply content is {type(content).__name__}, not text")
    return Result(item_id, answer=content.strip())   # as the hf backend: no edge whitespace


def _read_quietly(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except OSError:
        return b""


def _retry_after(headers) -> float | None:
    try:
        value = float(headers.get("Retry-After")) if headers else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and value >= 0 else None


def _snippet(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    return (text[:_SNIPPET] + "...") if len(text) > _SNIPPET else (text or "(empty)")
