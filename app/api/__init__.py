"""The kernel every router shares: bearer-token auth and scopes, pagination and cursors, path
and query parameters. It imports no feature domain (an import-linter contract)."""
