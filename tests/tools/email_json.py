#!/usr/bin/env python3
"""An RFC 5322 message as the tests read it: one JSON object per message.

    python3 tests/tools/email_json.py FILE.eml

Prints the message in FILE.eml as JSON: from, to, subject (headers, decoded per RFC 2047,
or null when absent); text, html (the text/plain and text/html bodies, decoded
(quoted-printable, base64, charset) with CRLF line ends as "\\n", or null); content_type
(the top-level message's, e.g. "multipart/alternative"). The SMTP sink (smtp_sink.py) keeps
what it receives in the same shape. The Rust side is tests/api/notification_file.rs.
"""

import email
import email.policy
import json
import sys


def body(message, subtype):
    """The decoded text/SUBTYPE body of a message, or None."""
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    return part.get_content().replace("\r\n", "\n")


def header(message, name):
    value = message[name]
    return None if value is None else str(value)


def record(raw):
    """The JSON fields of the message whose bytes are `raw`."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return {
        "from": header(message, "From"),
        "to": header(message, "To"),
        "subject": header(message, "Subject"),
        "text": body(message, "plain"),
        "html": body(message, "html"),
        "content_type": message.get_content_type(),
    }


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as file:
        print(json.dumps(record(file.read()), ensure_ascii=False))
