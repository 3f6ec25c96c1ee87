#!/usr/bin/env python3
"""Writes the seed corpora of `upload` and `moderation_rules`.

upload: each fixture of tests/fixtures and a tiny PDF, bare (cleaned directly) and wrapped in a
multipart body in the target's input format, `[split seed][boundary]\\n[body]`: one `file` field,
a field before it, a quoted boundary, a body cut into chunks, a file over the target's 64 KiB
limit, a body with no `file` field and one cut off before its closing boundary.

moderation_rules: phone numbers, e-mail addresses (disguised ones too), links, handles and
messenger invitations, blocked words, with emoji, accents and CJK around them, and texts that
must pass untouched.

Run from fuzz/: `python3 seed_upload_moderation.py`, then `cargo fuzz cmin <target>`.
Standard library only."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def part(boundary, name, content, filename=None, ctype=None):
    disp = f'form-data; name="{name}"'
    if filename is not None:
        disp += f'; filename="{filename}"'
    head = f"--{boundary}\r\nContent-Disposition: {disp}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode() + b"\r\n" + content + b"\r\n"


def framed(seed, boundary_line, body):
    return bytes([seed]) + boundary_line.encode() + b"\n" + body


def upload_seeds():
    files = {}
    for name in sorted(os.listdir(FIXTURES)):
        with open(os.path.join(FIXTURES, name), "rb") as f:
            files[name] = f.read()
    files["tiny.pdf"] = PDF
    out = {}
    for name, content in files.items():
        out[f"bare-{name}"] = content
        b = "XyZ"
        body = part(b, "file", content, name, "application/octet-stream") + f"--{b}--\r\n".encode()
        out[f"mp-{name}"] = framed(0, b, body)
        # Chunked, with a caption field first and a quoted boundary.
        b = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
        body = (part(b, "caption", b"holiday \xf0\x9f\x8f\x96") + part(b, "file", content, name)
                + f"--{b}--\r\n".encode())
        out[f"mp-chunked-{name}"] = framed(0x07, f'"{b}"', body)
    b = "b"
    out["mp-byte-by-byte"] = framed(0x1f, b, part(b, "file", files["t.gif"], "t.gif") + b"--b--\r\n")
    out["mp-too-large"] = framed(3, b, part(b, "file", b"GIF89a" + b"\0" * (65 * 1024), "big.gif") + b"--b--\r\n")
    out["mp-no-file"] = framed(0, b, part(b, "other", b"hello") + b"--b--\r\n")
    out["mp-cut-off"] = framed(0, b, part(b, "file", files["gps.jpg"], "x.jpg")[:-40])
    out["mp-empty-file"] = framed(0, b, part(b, "file", b"", "e") + b"--b--\r\n")
    return out


MODERATION = [
    "Hi! Is this still available? 🙂",
    "Call me on +31 6 1234 5678 tomorrow",
    "my number: (020) 555-0134 / 06-12345678",
    "meet on 2024-05-06 between 10:00-12:30, price €1.250,00",
    "mail john.doe@gmail.com or jane at yahoo dot com",
    "john(at)gmail(dot)com — ou jöhn[at]web.de",
    "ｊｏｈｎ＠ｇｍａｉｌ．ｃｏｍ",
    "see https://example.com/x?y=1 or www.shop.nl or bit.ly/abc",
    "our listing: https://marketplace.example/listing/12345678",
    "example(dot)com and e.g. a.m. 1.2.3",
    "add me on insta @cool_handle or whatsapp me",
    "wa.me/31612345678 t.me/handle discord.gg/abc",
    "hmu on snap 👻 my insta is dj.kåre",
    "这是诈骗 scam! 电话 138 0013 8000 请加微信 wechat",
    "Straße STRASSE straße c++ s.o.b.",
    "pay cash only, café ☕ crème brûlée",
    "电子邮件: 王@例子.中国 ou josé@exemplo.com.br",
    "📞 0️⃣6️⃣1️⃣2️⃣3️⃣4️⃣5️⃣6️⃣7️⃣8️⃣",
    "zero six one two three four five six seven eight",
    "\u202e+31 6 1234 5678\u200b@handle\u0301",
    "",
]


def main():
    targets = {"upload": upload_seeds(),
               "moderation_rules": {f"seed-{i:02}": t.encode() for i, t in enumerate(MODERATION)}}
    for target, seeds in targets.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds in {d}")


if __name__ == "__main__":
    main()
