"""OPS_API_TOKENS: only `name:scope:token` entries, each token once; errors never show a token."""

from __future__ import annotations

import pytest

from app.api.auth import OpsToken, authenticate, parse_tokens


def test_name_scope_token_entries_are_parsed_and_a_token_may_hold_colons() -> None:
    tokens = parse_tokens(["ops-team:write:s3cret", "grafana:read:a:b:c"])
    assert tokens == [
        OpsToken(name="ops-team", scope="write", secret="s3cret"),
        OpsToken(name="grafana", scope="read", secret="a:b:c"),
    ]
    principal = authenticate(tokens, "a:b:c")
    assert principal is not None and (principal.name, principal.scope) == ("grafana", "read")


@pytest.mark.parametrize(
    ("entries", "complaint"),
    [
        (["ops:write:fine", "bare-token-1234"], "entry 2 is not name:scope:token"),
        (["name:token-5678"], "entry 1 is not name:scope:token"),
        (["ops:admin:token-5678"], "entry 1: the scope must be read or write"),
        (["ops:write:"], "entry 1: empty name or token"),
        ([":read:token-5678"], "entry 1: empty name or token"),
    ],
)
def test_anything_but_name_scope_token_is_refused_by_position(
    entries: list[str], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint) as caught:
        parse_tokens(entries)
    for secret in ("bare-token-1234", "token-5678", "fine"):
        assert secret not in str(caught.value), "a token must never be echoed"


def test_the_same_token_twice_is_refused_whatever_its_names_and_scopes() -> None:
    with pytest.raises(ValueError, match="entries 1 and 3 have the same token") as caught:
        parse_tokens(["a:read:shared-token", "b:write:other", "c:write:shared-token"])
    assert "shared-token" not in str(caught.value)


def test_one_name_may_hold_two_tokens_while_one_is_rotated() -> None:
    tokens = parse_tokens(["ops:write:old-token", "ops:write:new-token"])
    assert [t.name for t in tokens] == ["ops", "ops"]
