"""``make stack``: the production topology on one machine, started and stopped by one supervisor.

A PostgreSQL primary and a streaming replica (``postgres.py``), PgBouncer and HAProxy with
generated configuration (``files.py``), two app nodes, Redis, two Celery workers and one beat,
all with production settings (``config.py``), started in order and stopped in reverse by
``supervisor.py`` as ``topology.py`` lays them out. Everything lives under ``.stack/``; only
127.0.0.1 is ever bound. See docs/stack.md.
"""
