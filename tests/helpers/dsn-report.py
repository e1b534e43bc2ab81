"""Reads a delivery status notification (RFC 3464 / RFC 6533) with Python's email package and
prints what a mail client would see of it as JSON: the report type, its parts, the status fields
per message and per recipient, and the returned original. Used by the bounce tests."""
import base64
import email
import email.parser
import email.policy
import json
import sys


def fields(block):
    return {name: " ".join(str(value).split()) for name, value in block.items()}


def status_blocks(part):
    if part.get_content_type() == "message/delivery-status":
        return [fields(b) for b in part.get_payload()]
    # Python parses message/global-delivery-status as one encapsulated message: its first block
    # is the header, the rest its body. Split the text again into blank-line separated blocks.
    inner = part.get_payload(0)
    text = inner.as_bytes(policy=email.policy.SMTPUTF8).decode("utf-8", "replace")
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    parser = email.parser.HeaderParser(policy=email.policy.default)
    return [fields(parser.parsestr(b)) for b in blocks]


def read(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = msg.get_payload() if msg.is_multipart() else []
    out = {
        "type": msg.get_content_type(),
        "reportType": msg.get_param("report-type"),
        "from": str(msg["From"]),
        "to": str(msg["To"]),
        "subject": str(msg["Subject"]),
        "autoSubmitted": str(msg["Auto-Submitted"]),
        "defects": [type(d).__name__ for d in msg.defects] + [type(d).__name__ for p in msg.walk() for d in p.defects],
        "parts": [p.get_content_type() for p in parts],
    }
    if len(parts) >= 2:
        out["human"] = parts[0].get_content()
        blocks = status_blocks(parts[1])
        out["perMessage"] = blocks[0]
        out["recipients"] = blocks[1:]
    if len(parts) >= 3:
        original = parts[2]
        ctype = original.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = original.get_payload(0)
            out["original"] = {"type": ctype, "subject": str(inner["Subject"]), "body": inner.get_content().replace("\r\n", "\n") if not inner.is_multipart() else None}
        elif ctype == "message/global-headers":
            inner = original.get_payload(0)
            out["original"] = {"type": ctype, "subject": str(inner["Subject"]), "body": None}
        else:
            headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(original.get_payload(decode=True))
            out["original"] = {"type": ctype, "subject": str(headers["Subject"]), "body": None}
    return out


# stdin: a JSON array of base64 messages; stdout: a JSON array of what was read of each.
json.dump([read(base64.b64decode(m)) for m in json.load(sys.stdin)], sys.stdout, ensure_ascii=False)
