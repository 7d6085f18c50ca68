"""The owner of the `deliveries` table: every statement that changes a delivery's row (claim,
lease, settle, hold, skip, requeue, replay, prune, and the inserts of intake and runs) is a named
function here; the rest of the code calls them. tests/delivery/store/test_owner.py fails when a
module elsewhere writes the table."""
