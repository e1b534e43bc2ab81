"""A test SMTP server on aiosmtpd for `mailbox send`: STARTTLS or implicit TLS, AUTH PLAIN and
LOGIN (aiosmtpd's own, with an authenticator), CRAM-MD5, XOAUTH2 and OAUTHBEARER (handler
mechanisms that check the password or the bearer token), scripted refusals, and every message
saved as N.eml (bytes as received) with N.json (envelope, parameters, AUTH user).
Usage: aiosmtpd-peer.py CONFIG_JSON; prints "READY" once it listens; stops on SIGTERM or stdin EOF.
"""
import asyncio, base64, hmac, json, os, secrets, signal, ssl, sys, threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword

config = json.loads(sys.argv[1])
users = config.get("users", {})
token = config.get("token")
outdir = config["dir"]
counter = [0]


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and users.get(auth_data.login.decode()) == auth_data.password.decode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)


class Handler:
    async def handle_MAIL(self, server, session, envelope, address, options):
        if address in config.get("reject_senders", []):
            return "550 5.7.1 Sender <%s> not allowed here" % address
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in config.get("reject_recipients", []):
            return "550 5.1.1 <%s>: no such user" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if config.get("reject_data"):
            return "554 5.6.0 Message refused by policy"
        counter[0] += 1
        base = os.path.join(outdir, "%d" % counter[0])
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "mail_options": envelope.mail_options,
                       "rcpt_options": envelope.rcpt_options, "auth": session.auth_data if isinstance(session.auth_data, str) else None,
                       "tls": session.ssl is not None}, f)
        return "250 2.0.0 OK saved as %d" % counter[0]

    async def auth_CRAM__MD5(self, server, args):
        challenge = ("<%s@aiosmtpd.test>" % secrets.token_hex(8)).encode()
        response = await server.challenge_auth(challenge)
        if response is MISSING:
            return AuthResult(success=False, handled=True)
        user, _, digest = response.decode().rpartition(" ")
        expected = users.get(user)
        ok = expected is not None and hmac.compare_digest(hmac.new(expected.encode(), challenge, "md5").hexdigest(), digest)
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    async def _bearer(self, server, args, mechanism):
        if len(args) > 1:
            blob = base64.b64decode(args[1])
        else:
            blob = await server.challenge_auth(b"")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        fields = blob.split(b"\x01")
        if mechanism == "OAUTHBEARER":
            gs2 = fields[0].decode()
            user = gs2.split("a=", 1)[1].rstrip(",") if "a=" in gs2 else ""
        else:
            user = fields[0].decode()[len("user="):]
        auth = next((f.decode() for f in fields if f.startswith(b"auth=")), "")
        if token is not None and auth == "auth=Bearer " + token:
            return AuthResult(success=True, handled=False, auth_data=user)
        status = base64.b64encode(json.dumps({"status": "invalid_token", "schemes": "bearer"}).encode()).decode()
        await server.push("334 " + status)
        await server._reader.readline()
        return AuthResult(success=False, handled=False, message="535 5.7.8 Invalid token")

    async def auth_XOAUTH2(self, server, args):
        return await self._bearer(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server, args):
        return await self._bearer(server, args, "OAUTHBEARER")


context = None
if config.get("tls") in ("starttls", "implicit"):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config["cert"], config["key"])
    # The name the client asked for (SNI), one line per handshake: "SNI -" when it sent none.
    context.sni_callback = lambda sock, name, ctx: print("SNI %s" % (name or "-"), flush=True)
    if config.get("broken_tls"):
        # Only TLS 1.0, which no current client accepts: every handshake fails.
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1

kwargs = dict(hostname=config.get("host", "127.0.0.1"), port=config["port"], server_hostname="aiosmtpd.test",
              data_size_limit=config.get("data_size_limit", 100 * 1024 * 1024), enable_SMTPUTF8=True,
              authenticator=authenticator, auth_require_tls=config.get("auth_require_tls", True),
              auth_exclude_mechanism=config.get("exclude_mechanisms", []))
if config.get("tls") == "starttls":
    kwargs.update(tls_context=context, require_starttls=config.get("require_starttls", False))
elif config.get("tls") == "implicit":
    kwargs.update(ssl_context=context)

controller = Controller(Handler(), **kwargs)
controller.start()
print("READY", flush=True)

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
stop.wait()
controller.stop()
