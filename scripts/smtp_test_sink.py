"""A loopback mail server for ai-shell's SMTP tests (started by scripts/smtp-test-server.sh).

Three listeners on 127.0.0.1, all with AUTH (user and password from the environment) and every
accepted message written to a Maildir (<dir>/Maildir/new/):
  SMTP_PORT        STARTTLS required before MAIL and AUTH; offers AUTH PLAIN and LOGIN after TLS
  SMTP_LOGIN_PORT  the same, but offers only AUTH LOGIN (so the client's LOGIN path is exercised)
  SMTPS_PORT       implicit TLS (TLS from the first byte); AUTH PLAIN and LOGIN
Runs until SIGTERM or SIGINT.
"""
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


def main() -> None:
    base = sys.argv[1]
    env = os.environ
    user = env["SMTP_USER"].encode()
    password = env["SMTP_PASSWORD"].encode()

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(f"{base}/server.pem", f"{base}/server.key")

    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
        return AuthResult(success=ok, handled=False)

    handler = Mailbox(f"{base}/Maildir")
    common = dict(hostname="127.0.0.1", authenticator=check, auth_required=True)
    servers = [
        # aiosmtpd offers AUTH only once the connection is encrypted (auth_require_tls)
        Controller(handler, port=int(env["SMTP_PORT"]), tls_context=tls, require_starttls=True,
                   auth_require_tls=True, **common),
        Controller(handler, port=int(env["SMTP_LOGIN_PORT"]), tls_context=tls, require_starttls=True,
                   auth_require_tls=True, auth_exclude_mechanism=["PLAIN"], **common),
        # implicit TLS: aiosmtpd does not count ssl_context as TLS for auth_require_tls
        Controller(handler, port=int(env["SMTPS_PORT"]), ssl_context=tls, auth_require_tls=False, **common),
    ]
    for s in servers:
        s.start()
    print(f"smtp test server ready: STARTTLS {env['SMTP_PORT']}, STARTTLS+LOGIN-only "
          f"{env['SMTP_LOGIN_PORT']}, implicit TLS {env['SMTPS_PORT']}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for s in servers:
        s.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
