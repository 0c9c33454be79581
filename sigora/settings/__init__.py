"""Settings, one module per environment: ``dev`` (manage.py's default), ``test``, ``production``."""
