"""short_error: what an operator reads of an exception, without SQL or parameters."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError, StatementError

from app.errors import short_error


def test_a_driver_error_shows_its_class_and_first_line_only() -> None:
    driver = ValueError('duplicate key value violates unique constraint "x"\nDETAIL: Key (id)=(7)')
    wrapped = IntegrityError("INSERT INTO deliveries VALUES ($1)", ("cust_secret",), driver)
    assert short_error(wrapped) == 'ValueError: duplicate key value violates unique constraint "x"'


def test_a_statement_refused_before_the_driver_shows_the_message_only() -> None:
    error = StatementError("A value is required", "SELECT $1", {"customer": "cust_secret"}, None)
    assert short_error(error) == "StatementError: A value is required"


def test_other_errors_show_class_and_message() -> None:
    assert short_error(KeyError("batch")) == "KeyError: 'batch'"
    assert short_error(TimeoutError()) == "TimeoutError"
