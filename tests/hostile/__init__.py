"""Hostile input on every URL and form (tests/test_hostile_input.py): the site map it walks and its prober."""
