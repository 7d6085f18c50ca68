"""Database: engine and sessions, the embedded Postgres, migrations, the model base."""
