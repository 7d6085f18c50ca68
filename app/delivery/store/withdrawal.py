"""Withdrawing what a canceled replay or run still has waiting, a batch at a time.

A bulk replay or a run over a big segment can have hundreds of thousands of deliveries waiting
when it is canceled. The cancel only marks the replay or run (`withdrawing`) in its own
transaction and answers; its waiting deliveries are then skipped (`replay_canceled`,
`run_canceled`, each with an attempt row naming who canceled) in batches (batches.py), by the
API right after its answer and by every worker's tending lane (`continue_withdrawals`), which
carries on what an API that died left. Each batch adds what it withdrew to `withdrawn`.

Correctness does not wait for the batches: from the moment the cancel commits, the claims skip
every delivery of a replay or run being withdrawn (`NOT_WITHDRAWING`, in hold.NOT_STOPPED). The
mark stays until none of its deliveries waits or is on its way: a send in flight at the cancel
that Braze fails comes back pending with a retry, which no claim takes and the next batch
withdraws. Then the mark is cleared, which keeps the claims' list of ids short.

Each batch first takes the replay's or run's row, SKIP LOCKED: another batch at work on it (the
API's and the tending lane's at once) keeps it, and this one leaves the work to that one. It
then takes up to BATCH pending deliveries in id order after the last batch's, through
`ix_deliveries_waiting_by_replay` / `_by_run` (waiting rows only): it reads what it withdraws,
never the history nor what earlier batches withdrew.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.delivery.store.batches import BATCH, IN_INDEX_ORDER, after_the_answer, to_the_end
from app.delivery.store.skipping import skip_statement

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Owner:
    """What a withdrawal is for: the rows of `table`, named by the deliveries' `column`."""

    noun: str
    table: str
    column: str
    reason: str
    # No row has it: what a delivery without an owner compares as in the claims' predicate.
    no_id: str
    # SQL on the owner's row: the message of each withdrawn delivery's attempt.
    message: str
    # The owner's row, in each batch's transaction: what was withdrawn so far ($2 more), and
    # the mark cleared once none of its deliveries waits or is on its way.
    progress: str
    done: str
    # What the sweep of canceled ones leaves alone (SQL on `d`, the delivery).
    not_swept: str = "false"


REPLAY = Owner(
    "replay", "replays", "replay_id", "replay_canceled",
    no_id="'00000000-0000-0000-0000-000000000000'::uuid",
    message="'replay canceled by ' || canceled_by",
    progress="UPDATE replays SET withdrawn = withdrawn + $2 WHERE id = $1",
    done="UPDATE replays SET withdrawing = false WHERE id = $1",
)  # fmt: skip
RUN = Owner(
    "run", "runs", "run_id", "run_canceled", no_id="0",
    message="'run ' || id || ' canceled by ' || canceled_by",
    progress="UPDATE runs SET withdrawn = withdrawn + $2 WHERE id = $1",
    done="UPDATE runs SET withdrawing = false WHERE id = $1",
    # A replay queued it again after the cancel: the replay's now (its own cancel withdraws it).
    not_swept="d.replay_id IS NOT NULL",
)  # fmt: skip
OWNERS = (REPLAY, RUN)

# For the claims' WHERE clauses (`d` is the delivery). Each list of ids is read once per
# statement (an uncorrelated ARRAY(...) is an init plan) through its partial index, as the
# paused distributions are. coalesce() is not strict, so the claims imply no index predicate
# on these columns (`replay_id IS NOT NULL`: claims.py, "Why the plans are stable").
NOT_WITHDRAWING = " AND ".join(
    f"coalesce(d.{o.column}, {o.no_id}) <> ALL (ARRAY(SELECT id FROM {o.table} WHERE withdrawing))"
    for o in OWNERS
)


# The sweep (`hold.tend`) looks at what was canceled this long ago at most: nothing of a
# replay's or run's should wait once its withdrawal is over (see above); this is the safety
# net, bounded by recent cancels rather than by every cancel ever kept.
SWEPT_FOR = "1 day"


@dataclass(frozen=True)
class _Statements:
    mark: str
    pick: str
    withdraw: str
    unsettled: str
    marked: str
    sweep: str


def _statements(o: Owner) -> _Statements:
    waiting = f"d.{o.column} = $1 AND d.status IN ('pending', 'in_flight')"
    # `= ANY(...)` does not imply the index's `IS NOT NULL` (the array could be empty), as
    # `= $1` does: the sweep states it.
    canceled = (
        f"ARRAY(SELECT id FROM {o.table} WHERE status = 'canceled' AND NOT withdrawing"
        f" AND canceled_at > clock_timestamp() - interval '{SWEPT_FOR}')"
    )
    left = f"""id IN (
    SELECT d.id FROM deliveries AS d
    WHERE d.{o.column} = ANY({canceled}) AND d.{o.column} IS NOT NULL
      AND d.status = 'pending' AND NOT ({o.not_swept})
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)"""
    return _Statements(
        mark=f"SELECT {o.message} AS message FROM {o.table}"
        " WHERE id = $1 AND withdrawing FOR NO KEY UPDATE SKIP LOCKED",
        pick=f"SELECT d.id FROM deliveries AS d WHERE d.{o.column} = $1 AND d.status = 'pending'"
        " AND d.id > $2 ORDER BY d.id LIMIT $3 FOR UPDATE SKIP LOCKED",
        withdraw=skip_statement("id = ANY($1::bigint[])", reason=o.reason, message="$2"),
        unsettled=f"SELECT EXISTS (SELECT FROM deliveries AS d WHERE {waiting})",
        marked=f"SELECT id FROM {o.table} WHERE withdrawing ORDER BY id",
        sweep=skip_statement(left, reason=o.reason, message=f"'the {o.noun} was canceled'"),
    )


_SQL = {o: _statements(o) for o in OWNERS}


async def has_unsettled(session: AsyncSession, owner: Owner, owner_id: object) -> bool:
    """Whether any delivery of the replay or run waits or is on its way: a cancel marks it
    withdrawing only then."""
    statement = text(_SQL[owner].unsettled.replace("$1", ":owner_id"))
    return bool((await session.execute(statement, {"owner_id": owner_id})).scalar())


async def run_batch(
    connection: asyncpg.Connection, owner: Owner, owner_id: object, after: int = 0
) -> tuple[int, int] | None:
    """One batch of the withdrawal after delivery id `after`, in its own transaction: how many
    it withdrew and the id to start the next batch after; None when there is nothing to do
    (not withdrawing, or another batch is at work on it)."""
    sql = _SQL[owner]
    async with connection.transaction():
        mark = await connection.fetchrow(sql.mark, owner_id)
        if mark is None:
            return None
        await connection.execute(IN_INDEX_ORDER)
        picked = [r["id"] for r in await connection.fetch(sql.pick, owner_id, after, BATCH)]
        if not picked:
            # Rows locked elsewhere or on their way keep the mark: a later pass takes them.
            if not await connection.fetchval(sql.unsettled, owner_id):
                await connection.execute(owner.done, owner_id)
            return 0, after
        await connection.execute(sql.withdraw, picked, mark["message"])
        await connection.execute(owner.progress, owner_id, len(picked))
        return len(picked), picked[-1]


async def carry_out(connection: asyncpg.Connection, owner: Owner, owner_id: object) -> int:
    """Withdraw, batch after batch, what the replay or run has waiting; how many."""
    return await to_the_end(partial(run_batch, connection, owner, owner_id), 0)


async def continue_withdrawals(pool: asyncpg.Pool) -> int:
    """Carry on every withdrawal still marked (one an API began and did not finish, or whose
    deliveries were on their way); how many withdrawn. A step of the tending lane."""
    total = 0
    async with pool.acquire() as connection:
        for owner in OWNERS:
            for row in await connection.fetch(_SQL[owner].marked):
                withdrawn = await carry_out(connection, owner, row["id"])
                if withdrawn:
                    logger.info(
                        "%s %s: withdrawal carried on, %d deliveries", owner.noun, row["id"],
                        withdrawn,
                    )  # fmt: skip
                total += withdrawn
    return total


async def carry_out_on(engine: AsyncEngine, owner: Owner, owner_id: object) -> None:
    """`carry_out` on a connection of the API's engine, after its answer (failures logged)."""
    await after_the_answer(
        engine, partial(carry_out, owner=owner, owner_id=owner_id),
        what=f"{owner.noun} {owner_id}: withdrawal",
    )  # fmt: skip


async def sweep_canceled(connection: asyncpg.Connection, *, limit: int) -> int:
    """Withdraw up to `limit` deliveries per kind that still wait for a replay or run canceled
    within SWEPT_FOR whose withdrawal is over; how many. A statement of the sweep."""
    total = 0
    for owner in OWNERS:
        status = await connection.execute(_SQL[owner].sweep, limit)
        total += int(status.split()[-1])
    return total
