"""A real SMTP server for promgate's email tests (aiosmtpd).

Writes every accepted message as OUT/NNNN.json (envelope, raw message, whether TLS and AUTH were
used) and prints READY once it listens. Options: PLAIN/LOGIN authentication with one user,
STARTTLS or implicit TLS (SMTPS) with a given certificate, and a scripted SMTP reply code for
the first messages (to test transient and permanent failures).
"""
import argparse
import json
import os
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Save:
    def __init__(self, out, fail_codes):
        self.out = out
        self.n = 0
        self.fail_codes = list(fail_codes)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.fail_codes:
                code = self.fail_codes.pop(0)
                return f"{code} scripted failure"
            self.n += 1
            n = self.n
        rec = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "tls": session.ssl is not None
            or server.transport.get_extra_info("cipher") is not None,
            "authenticated": bool(session.authenticated),
            "helo": session.host_name,
        }
        tmp = os.path.join(self.out, f".{n:04d}.json")
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.rename(tmp, os.path.join(self.out, f"{n:04d}.json"))
        return "250 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--tlscert")
    p.add_argument("--tlskey")
    p.add_argument("--smtps", action="store_true")
    p.add_argument("--fail", type=int, action="append", default=[])
    a = p.parse_args()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        )
        return AuthResult(success=ok, handled=False)

    kwargs = {}
    if a.user:
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(a.tlscert))
    if a.tlscert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tlscert, a.tlskey)
        if a.smtps:
            kwargs["ssl_context"] = ctx
        else:
            kwargs["tls_context"] = ctx
            kwargs["require_starttls"] = True
    c = Controller(Save(a.out, a.fail), hostname="127.0.0.1", port=a.port, **kwargs)
    c.start()
    print("READY", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
