"""The worker process, a composition root: it assembles every lane (delivery, publishing,
runs, bulk replay, retention) from the domains below it, and `serve` supervises it as a child
process. Nothing in the product imports this package except the CLI."""
