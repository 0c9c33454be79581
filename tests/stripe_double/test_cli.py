"""``python -m stripe_double``: prints its URL, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_command_serves_until_terminated():
    process = subprocess.Popen(
        [sys.executable, "-m", "stripe_double", "--port", "0", "--api-key", "sk_test_cli"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        assert "Offline Stripe double" in banner
        url = banner.rsplit(" on ", 1)[1].strip()
        request = urllib.request.Request(f"{url}/v1/customers", headers={"Authorization": "Bearer sk_test_cli"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["object"] == "list"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()
