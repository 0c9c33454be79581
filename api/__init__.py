"""The metering HTTP API (``/api/v1/``): credentials, endpoints, schema and docs."""
