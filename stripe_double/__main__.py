"""Run the double until killed: ``python -m stripe_double --port 12111 --webhook-url ...``."""

from __future__ import annotations

import argparse
import signal
import threading

from . import API_VERSION, StripeDouble


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stripe_double", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--api-key", default="sk_test_double", help="the secret key clients must send")
    parser.add_argument("--webhook-url", default=None, help="where signed events are POSTed")
    parser.add_argument("--webhook-secret", default="whsec_test", help="the signing secret (whsec_...)")
    parser.add_argument("--retry-delays", default="1,5,30", help="seconds between delivery attempts, comma-separated")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    double = StripeDouble(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        retry_delays=tuple(int(delay) for delay in args.retry_delays.split(",") if delay.strip()),
        verbose=args.verbose,
    ).start()
    print(f"Offline Stripe double (API {API_VERSION}) on {double.url}", flush=True)
    if args.webhook_url:
        print(f"Delivering signed webhooks to {args.webhook_url}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        double.stop()


if __name__ == "__main__":
    main()
