"""Entry point of a pool worker process: ``python -m lfkit.sql._worker --fd N ...`` (internal)."""

from lfkit.sql.pool import _worker_cli

if __name__ == "__main__":
    _worker_cli()
