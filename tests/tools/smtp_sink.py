#!/usr/bin/env python3
"""An SMTP sink for the tests: a real SMTP server on loopback that keeps what it receives.

    python3 tests/tools/smtp_sink.py --port PORT --dir DIR

Listens on 127.0.0.1:PORT (plain SMTP, no TLS, no AUTH) and writes each message it accepts
to DIR as one JSON file, 000001.json, 000002.json, ... in arrival order, numbering on from
the highest file already there, so a sink restarted on the same DIR overwrites nothing. A
file is written under a temporary name (.NNNNNN.json.tmp) and then renamed, so a reader
never sees half of one. Its fields:

    mail_from, rcpt_tos      the SMTP envelope (MAIL FROM, the list of RCPT TO)
    from, to, subject        the headers, decoded (RFC 2047), or null when absent
    text, html               the text/plain and text/html bodies, decoded (quoted-printable,
                             base64, charset) with CRLF line ends as "\\n", or null
    content_type             the top-level message's, e.g. "multipart/alternative"

Prints "ready" on stdout once it listens; exits cleanly on SIGTERM or SIGINT.
Needs aiosmtpd (`pip install aiosmtpd`). The Rust side is tests/api/smtp.rs.
"""

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path

from aiosmtpd.smtp import SMTP

# Beside this script: the message's fields, decoded the same way for the file outbox's tests.
from email_json import record


class Sink:
    """An aiosmtpd handler that writes each message to a JSON file in `directory`."""

    def __init__(self, directory):
        self.directory = directory
        numbers = [int(p.stem) for p in directory.glob("*.json") if p.stem.isdigit()]
        self.last = max(numbers, default=0)

    async def handle_DATA(self, server, session, envelope):
        fields = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        fields.update(record(envelope.content))
        self.last += 1
        name = f"{self.last:06d}.json"
        temporary = self.directory / f".{name}.tmp"
        temporary.write_text(json.dumps(fields, ensure_ascii=False, indent=2), encoding="utf-8")
        os.rename(temporary, self.directory / name)
        return "250 OK: message accepted"


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)

    loop = asyncio.get_running_loop()
    sink = Sink(args.dir)
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="smtp-sink", loop=loop), host="127.0.0.1", port=args.port
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
