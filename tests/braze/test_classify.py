from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.braze.classify import (
    DEFAULT_RATE_LIMIT_WAIT,
    MAX_MESSAGE_CHARS,
    Classification,
    Kind,
    RateLimitReading,
    classify_response,
    classify_transport_error,
)

NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
EPOCH_NOW = int(NOW.timestamp())


def classify(
    status: int,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    count: int = 3,
) -> Classification:
    text = body if isinstance(body, str) else json.dumps(body or {})
    return classify_response(
        status_code=status, headers=headers or {}, body=text, object_count=count, now=NOW
    )


def attribute_error(index: int, message: str = "bad") -> dict[str, Any]:
    return {"type": message, "input_array": "attributes", "index": index}


def test_201_success_delivers_every_object() -> None:
    result = classify(201, {"message": "success", "attributes_processed": 3})
    assert result.kind is Kind.DELIVERED
    assert result.failed == {}
    assert result.delivered_indexes == {0, 1, 2}
    assert result.message == "success"


def test_201_with_indexed_errors_fails_only_those_objects() -> None:
    body = {
        "message": "success",
        "errors": [attribute_error(1, "'external_id' is required"), attribute_error(1, "second")],
    }
    result = classify(201, body)
    assert result.kind is Kind.DELIVERED
    assert result.failed == {1: "'external_id' is required; second"}
    assert result.delivered_indexes == {0, 2}


def test_201_errors_that_name_no_attribute_object_fail_nothing() -> None:
    body = {
        "message": "success",
        "errors": [
            {"type": "event", "input_array": "events", "index": 0},
            {"type": "no index", "input_array": "attributes"},
            attribute_error(7),
            attribute_error(True),
            "not an object",
        ],
    }
    result = classify(201, body)
    assert result.kind is Kind.DELIVERED
    assert result.delivered_indexes == {0, 1, 2}


def test_202_queued_during_maintenance_counts_as_delivered() -> None:
    assert classify(202, {"message": "queued"}).kind is Kind.DELIVERED


def test_400_with_indexes_rejects_those_and_leaves_the_rest_unprocessed() -> None:
    body = {
        "message": "Valid data must be provided in the 'attributes', 'events', or 'purchases' "
        "fields.",
        "errors": [attribute_error(0, "The value provided for the 'email' field is not valid.")],
    }
    result = classify(400, body)
    assert result.kind is Kind.REJECTED
    assert result.failed == {0: "The value provided for the 'email' field is not valid."}
    assert result.unprocessed_indexes == {1, 2}
    assert result.delivered_indexes == frozenset()
    assert "Valid data must be provided" in result.message


def test_400_without_indexes_splits_a_batch_of_several_objects() -> None:
    result = classify(400, {"message": "Max Input Length Exceeded"})
    assert result.kind is Kind.SPLIT
    assert result.failed == {}
    assert result.unprocessed_indexes == {0, 1, 2}


def test_400_without_indexes_rejects_a_single_object_with_brazes_message() -> None:
    result = classify(400, "'external_id' or 'braze_id' or 'user_alias' is required", count=1)
    assert result.kind is Kind.REJECTED
    assert result.failed == {0: "'external_id' or 'braze_id' or 'user_alias' is required"}


def test_413_splits_a_batch_of_several_objects() -> None:
    assert classify(413, "<html>Request Entity Too Large</html>").kind is Kind.SPLIT


def test_413_rejects_a_single_object() -> None:
    result = classify(413, {"message": "Request Entity Too Large"}, count=1)
    assert result.kind is Kind.REJECTED
    assert result.failed == {0: "Request Entity Too Large"}


def test_429_waits_for_retry_after_header() -> None:
    result = classify(429, {"message": "Rate Limited"}, headers={"x-ratelimit-retry-after": "7"})
    assert result.kind is Kind.RATE_LIMITED
    assert result.retry_after == timedelta(seconds=7)
    assert result.unprocessed_indexes == {0, 1, 2}


def test_429_reads_headers_whatever_their_case() -> None:
    result = classify(429, headers={"X-RATELIMIT-RETRY-AFTER": "4"})
    assert result.retry_after == timedelta(seconds=4)


def test_429_with_epoch_reset_waits_until_that_time() -> None:
    result = classify(429, headers={"X-RateLimit-Reset": str(EPOCH_NOW + 12)})
    assert result.retry_after == timedelta(seconds=12)


def test_429_with_seconds_left_reset_waits_that_many_seconds() -> None:
    result = classify(429, headers={"X-RateLimit-Reset": "2"})
    assert result.retry_after == timedelta(seconds=2)


def test_429_with_epoch_reset_in_the_past_waits_nothing() -> None:
    result = classify(429, headers={"X-RateLimit-Reset": str(EPOCH_NOW - 5)})
    assert result.retry_after == timedelta(0)


def test_429_retry_after_wins_over_reset() -> None:
    headers = {"X-Ratelimit-Retry-After": "1", "X-RateLimit-Reset": str(EPOCH_NOW + 60)}
    assert classify(429, headers=headers).retry_after == timedelta(seconds=1)


def test_429_with_standard_retry_after_header_is_honoured() -> None:
    assert classify(429, headers={"Retry-After": "9"}).retry_after == timedelta(seconds=9)


def test_429_without_usable_headers_waits_the_default() -> None:
    result = classify(429, headers={"X-Ratelimit-Retry-After": "soon"})
    assert result.retry_after == DEFAULT_RATE_LIMIT_WAIT


def test_429_wait_is_capped_at_an_hour() -> None:
    result = classify(429, headers={"X-Ratelimit-Retry-After": "86400"})
    assert result.retry_after == timedelta(hours=1)


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_server_errors_and_408_are_retried(status: int) -> None:
    result = classify(status, "<html>Bad Gateway</html>")
    assert result.kind is Kind.RETRY
    assert result.retry_after is None
    assert result.message == "<html>Bad Gateway</html>"


def test_503_with_retry_after_says_when_to_retry() -> None:
    assert classify(503, headers={"Retry-After": "30"}).retry_after == timedelta(seconds=30)


@pytest.mark.parametrize("status", [401, 403, 404, 415])
def test_configuration_statuses_stop_sending(status: int) -> None:
    result = classify(status, {"message": "Invalid API key"})
    assert result.kind is Kind.CONFIG_ERROR
    assert result.message == "Invalid API key"
    assert result.unprocessed_indexes == {0, 1, 2}


@pytest.mark.parametrize("status", [301, 405, 409, 422])
def test_unexpected_statuses_are_configuration_errors_not_drops(status: int) -> None:
    assert classify(status).kind is Kind.CONFIG_ERROR


def test_rate_limit_headers_are_read_on_success_with_an_epoch_reset() -> None:
    headers = {
        "X-RateLimit-Limit": "3000",
        "X-RateLimit-Remaining": "12",
        "X-RateLimit-Reset": str(EPOCH_NOW + 2),
    }
    result = classify(201, {"message": "success"}, headers=headers)
    assert result.rate_limit == RateLimitReading(
        limit=3000, remaining=12, resets_in=timedelta(seconds=2)
    )


def test_rate_limit_reset_as_seconds_left_is_read_too() -> None:
    result = classify(201, {"message": "success"}, headers={"x-ratelimit-reset": "1"})
    assert result.rate_limit == RateLimitReading(
        limit=None, remaining=None, resets_in=timedelta(seconds=1)
    )


def test_no_rate_limit_headers_give_no_reading() -> None:
    assert classify(201, {"message": "success"}).rate_limit is None


def test_long_messages_are_truncated_for_the_audit_log() -> None:
    result = classify(500, "x" * 5000)
    assert len(result.message) == MAX_MESSAGE_CHARS
    assert result.message.endswith("more characters]")


@pytest.mark.parametrize("body", ["", "null", "[1,2]", '{"errors": 3}', "\xff", '{"message": 5}'])
def test_odd_bodies_never_raise(body: str) -> None:
    assert classify(400, body).kind is Kind.SPLIT
    assert classify(201, body).kind is Kind.DELIVERED


def test_bytes_body_is_read_like_text() -> None:
    result = classify_response(
        status_code=201,
        headers={},
        body=json.dumps({"message": "success", "errors": [attribute_error(2)]}).encode(),
        object_count=3,
        now=NOW,
    )
    assert result.failed == {2: "bad"}


def test_transport_timeout_is_retried_with_its_error_text() -> None:
    result = classify_transport_error(httpx.ReadTimeout("timed out"), object_count=2)
    assert result.kind is Kind.RETRY
    assert result.status_code is None
    assert result.message == "ReadTimeout: timed out"
    assert result.unprocessed_indexes == {0, 1}


def test_connection_error_without_text_is_retried_with_its_type() -> None:
    result = classify_transport_error(httpx.ConnectError(""), object_count=1)
    assert result.kind is Kind.RETRY
    assert result.message == "ConnectError"
