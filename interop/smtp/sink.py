"""A real SMTP server (aiosmtpd) for the black-box tests: prints `READY <port>` once it listens,
then one `MAIL <json>` line per message received (recipients, subject, and the text as a mail
reader decodes it, with Python's own `email` parser), and stops when its standard input closes
(the test that started it ended)."""

import email
import email.policy
import json
import socket
import sys

from aiosmtpd.controller import Controller


class Sink:
    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        line = json.dumps({
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": parsed["subject"],
            "message": parsed.get_content(),
        })
        sys.stdout.write(f"MAIL {line}\n")
        sys.stdout.flush()
        return "250 OK"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
