"""A local SMTP server for the compatibility suite: accepts every message and writes it to a
directory as one JSON file per message ({"mail_from", "rcpt_tos", "data"}, data being the raw
RFC 5322 message), so tests can read what forge-server sent over SMTP.

    python smtp_sink.py --port 2525 --dir /tmp/mail

Prints "ready" once it accepts connections; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import threading

from aiosmtpd.controller import Controller


class DirectoryHandler:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        with self.lock:
            n = next(self.counter)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": envelope.original_content.decode("utf-8", "replace"),
        }
        final = os.path.join(self.directory, f"{n:05d}.json")
        tmp = final + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, final)  # readers never see a half-written file
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    controller = Controller(DirectoryHandler(args.dir), hostname=args.host, port=args.port)
    controller.start()  # returns once the server accepts connections
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("ready", flush=True)
    try:
        stop.wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
