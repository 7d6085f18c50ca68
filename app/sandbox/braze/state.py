"""What the Braze emulator knows and how it judges one `/users/track` request, without HTTP.

Profiles are keyed by the identifier Braze looks users up with (`user_key`). The answers follow
`reference/braze.md`; the wording of messages Braze does not document is ours.
"""

from __future__ import annotations

import copy
import hmac
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from app.braze.payload import (
    MAX_BODY_BYTES,
    MAX_EXTERNAL_ID_BYTES,
    MAX_OBJECTS_PER_REQUEST,
    MAX_STRING_LENGTH,
    lookup_identifier,
    primary_identifiers,
)
from app.sandbox.braze.faults import FaultAnswer, Faults

ARRAYS = ("attributes", "events", "purchases")
# Observed in Braze answers (braze.md §3.1).
PARSE_ERROR = "Error while parsing request body. Please check your syntax."
NO_VALID_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
MISSING_IDENTIFIER = "'external_id' or 'braze_id' or 'user_alias' is required"
TOO_MANY_OBJECTS = "Max Input Length Exceeded"
# Not documented by Braze: our wording.
MORE_THAN_ONE_IDENTIFIER = "only one of 'external_id', 'braze_id' or 'user_alias' may be given"
BAD_ALIAS = "'user_alias' must be an object with string 'alias_name' and 'alias_label'"
BAD_IDENTIFIER = "the identifier must be a non-empty string"
ID_TOO_LARGE = f"'external_id' is larger than {MAX_EXTERNAL_ID_BYTES} bytes"
NOT_AN_OBJECT = "each item must be a JSON object"

ResetFormat = Literal["epoch", "seconds"]


def user_key(obj: Mapping[str, Any]) -> str | None:
    """The profile key of the user this object targets, e.g. `external_id:u1`,
    `user_alias:<label>:<name>`, `braze_id:...`, `email:...`; None when it names no single user."""
    identifier = lookup_identifier(obj)
    if identifier is None:
        return None
    value = obj[identifier]
    if identifier == "user_alias":
        return f"user_alias:{value['alias_label']}:{value['alias_name']}"
    return f"{identifier}:{value}"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    object_count: int = 0
    fault: str | None = None
    error_indexes: tuple[int, ...] = ()
    ignored: tuple[str, ...] = ()  # "attributes[i].key" values Braze drops without an error


@dataclass(frozen=True)
class RecordedRequest:
    at: datetime
    object_count: int
    status: int
    body_bytes: int
    delay_ms: float
    fault: str | None
    error_indexes: tuple[int, ...]
    ignored: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


class EmulatorState:
    """The emulator's profiles, request log, rate-limit window and faults."""

    def __init__(
        self,
        *,
        api_key: str,
        max_objects: int = MAX_OBJECTS_PER_REQUEST,
        max_body_bytes: int = MAX_BODY_BYTES,
        rate_limit: int = 3000,
        rate_window_seconds: float = 3.0,
        reset_format: ResetFormat = "epoch",
        seed: int | None = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.max_objects = max_objects
        self.max_body_bytes = max_body_bytes
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.reset_format: ResetFormat = reset_format
        self.clock = clock
        self.faults = Faults(seed=seed, clock=clock)
        self.profiles: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self._window: tuple[float, int] = (0.0, 0)  # (window start, requests counted in it)
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget profiles, requests, the rate-limit window and every fault."""
        with self._lock:
            self.profiles.clear()
            self.requests.clear()
            self._window = (0.0, 0)
        self.faults.clear()

    def profiles_snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.profiles)

    def requests_snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [record.as_json() for record in self.requests]

    def record(self, answer: Answer | FaultAnswer, *, body: bytes, delay: float) -> None:
        """Add one answered request to the log."""
        errors: tuple[int, ...] = ()
        ignored: tuple[str, ...] = ()
        if isinstance(answer, Answer):
            errors, ignored = answer.error_indexes, answer.ignored
        # Answers given before the body was read (faults, 401, 413...) still log what it held.
        count = answer.object_count if isinstance(answer, Answer) else 0
        count = count or count_objects(body)
        record = RecordedRequest(
            at=datetime.fromtimestamp(self.clock(), UTC),
            object_count=count,
            status=answer.status,
            body_bytes=len(body),
            delay_ms=round(delay * 1000, 3),
            fault=answer.fault,
            error_indexes=errors,
            ignored=ignored,
        )
        with self._lock:
            self.requests.append(record)

    def handle_track(self, *, authorization: str, content_type: str, body: bytes) -> Answer:
        """Judge one `/users/track` request as Braze would and apply it to the profiles."""
        limit = min(self.max_body_bytes, self.faults.max_body_bytes or self.max_body_bytes)
        if len(body) > limit:
            fault = "max_body_bytes" if limit < self.max_body_bytes else None
            return Answer(413, {"message": "Request Entity Too Large"}, fault=fault)
        if not hmac.compare_digest(authorization.encode(), f"Bearer {self.api_key}".encode()):
            return Answer(401, {"message": "Invalid API key"})
        if content_type.split(";")[0].strip().lower() != "application/json":
            return Answer(415, {"message": "Unsupported Media Type"})
        with self._lock:
            rate_headers = self._take_rate_token()
            if rate_headers is None:
                retry_after = math.ceil(self._window[0] + self.rate_window_seconds - self.clock())
                headers = {"X-Ratelimit-Retry-After": str(max(retry_after, 1))}
                return Answer(429, {"message": "Rate Limit Exceeded"}, headers)
            answer = self._process(body)
        return replace(answer, headers={**answer.headers, **rate_headers})

    def _take_rate_token(self) -> dict[str, str] | None:
        """Count one request in the fixed window; None when the window is full (429)."""
        now = self.clock()
        start = math.floor(now / self.rate_window_seconds) * self.rate_window_seconds
        count = self._window[1] if self._window[0] == start else 0
        if count >= self.rate_limit:
            return None
        self._window = (start, count + 1)
        ends = start + self.rate_window_seconds
        reset = math.ceil(ends) if self.reset_format == "epoch" else math.ceil(ends - now)
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.rate_limit - count - 1),
            "X-RateLimit-Reset": str(reset),
        }

    def _process(self, body: bytes) -> Answer:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return Answer(400, {"message": PARSE_ERROR})
        arrays = {name: payload.get(name) for name in ARRAYS} if isinstance(payload, dict) else {}
        if not any(isinstance(items, list) and items for items in arrays.values()):
            return Answer(400, {"message": NO_VALID_DATA})
        count = sum(len(items) for items in arrays.values() if isinstance(items, list))
        if count > self.max_objects:
            return Answer(400, {"message": TOO_MANY_OBJECTS}, object_count=count)
        errors: list[dict[str, Any]] = []
        processed: dict[str, int] = {}
        ignored: list[str] = []
        for name, items in arrays.items():
            if not isinstance(items, list):
                continue
            processed[name] = 0
            for index, obj in enumerate(items):
                problem = self._object_problem(obj)
                if problem is not None:
                    errors.append({"type": problem, "input_array": name, "index": index})
                    continue
                processed[name] += 1
                if name == "attributes":
                    ignored.extend(f"attributes[{index}].{key}" for key in self._apply(obj))
        attribute_errors = tuple(e["index"] for e in errors if e["input_array"] == "attributes")
        if len(errors) == count:
            # Nothing usable: Braze answers a fatal 400 that still names each object.
            body_400 = {"message": NO_VALID_DATA, "errors": errors}
            return Answer(400, body_400, object_count=count, error_indexes=attribute_errors)
        answer: dict[str, Any] = {"message": "success"}
        answer.update({f"{name}_processed": n for name, n in processed.items()})
        if errors:
            answer["errors"] = errors
        return Answer(
            201, answer, object_count=count, error_indexes=attribute_errors, ignored=tuple(ignored)
        )

    def _object_problem(self, obj: object) -> str | None:
        if not isinstance(obj, dict):
            return NOT_AN_OBJECT
        if len(primary_identifiers(obj)) > 1:
            return MORE_THAN_ONE_IDENTIFIER
        identifier = lookup_identifier(obj)
        if identifier is None:
            return MISSING_IDENTIFIER
        value = obj[identifier]
        if identifier == "user_alias":
            if not isinstance(value, dict) or not all(
                isinstance(value.get(k), str) and value[k] for k in ("alias_name", "alias_label")
            ):
                return BAD_ALIAS
        elif not isinstance(value, str) or not value:
            return BAD_IDENTIFIER
        elif identifier == "external_id" and len(value.encode()) > MAX_EXTERNAL_ID_BYTES:
            return ID_TOO_LARGE
        refused = [
            self.faults.attribute_errors[k] for k in obj if k in self.faults.attribute_errors
        ]
        return refused[0] if refused else self.faults.object_errors.get(user_key(obj) or "")

    def _apply(self, obj: dict[str, Any]) -> list[str]:
        """Write one valid attributes object to its profile; the keys Braze would drop."""
        key = user_key(obj)
        assert key is not None  # checked by _object_problem
        identifier = lookup_identifier(obj)
        # Braze creates profiles for an unknown external_id (unless told not to) and for an
        # email or phone; an alias only with `_update_existing_only: false`; a braze_id never.
        creates = {"external_id": True, "email": True, "phone": True, "user_alias": False}
        update_only = obj.get("_update_existing_only", not creates.get(identifier or "", False))
        if key not in self.profiles and update_only:
            return []
        profile = self.profiles.setdefault(key, {})
        ignored: list[str] = []
        for name, value in obj.items():
            if name == identifier or name.startswith("_"):
                continue
            if len(name) > MAX_STRING_LENGTH or _has_long_string(value):
                ignored.append(name)
            elif value is None:
                profile.pop(name, None)
            else:
                profile[name] = _updated(profile.get(name), value)
        return ignored


def _updated(current: Any, value: Any) -> Any:
    """The attribute's new value, honouring Braze's `inc`, `add` and `remove` operations."""
    if isinstance(value, dict) and set(value) == {"inc"} and isinstance(value["inc"], int | float):
        return (current if isinstance(current, int | float) else 0) + value["inc"]
    if isinstance(value, dict) and value and set(value) <= {"add", "remove"}:
        items = [
            v
            for v in (current if isinstance(current, list) else [])
            if v not in value.get("remove", [])
        ]
        for item in value.get("add", []):
            # Arrays hold unique values; adding one again moves it to the end.
            items = [*(v for v in items if v != item), item]
        return items
    return value


def _has_long_string(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) > MAX_STRING_LENGTH
    if isinstance(value, dict):
        return any(len(k) > MAX_STRING_LENGTH or _has_long_string(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_long_string(v) for v in value)
    return False


def count_objects(body: bytes) -> int:
    """How many objects a request body carries, 0 when it is not a track body."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return 0
    if not isinstance(payload, dict):
        return 0
    return sum(len(v) for name in ARRAYS if isinstance(v := payload.get(name), list))
