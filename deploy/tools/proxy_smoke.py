#!/usr/bin/env python3
"""Runs deploy/caddy/Caddyfile, unchanged, in front of a small fake upstream
on loopback and checks what the app relies on from its proxy:

- Server-Sent Events arrive as they are written, not buffered to the end;
- a WebSocket upgrade (GET /ws) is passed through and the connection then
  carries bytes both ways;
- X-Forwarded-For ends with the address the proxy saw, whatever the client
  claimed (the app reads it from the right);
- /metrics is not reachable through the proxy.

Usage: proxy_smoke.py CADDY_BINARY CADDYFILE. Bounded: about 5 s when all is
well, 30 s at most. Exit status 1 on any failure.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import time

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SSE_EVENTS = 5
SSE_GAP = 0.3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers.setdefault(k.strip().lower(), []).append(v.strip())
        if path == "/headers":
            body = json.dumps(headers).encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
        elif path == "/sse":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
            for i in range(SSE_EVENTS):
                frame = f"event: message_chunk\ndata: {{\"seq\": {i + 1}}}\n\n".encode()
                writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                await writer.drain()
                if i + 1 < SSE_EVENTS:
                    await asyncio.sleep(SSE_GAP)
            writer.write(b"0\r\n\r\n")
        elif path == "/ws" and "websocket" in ",".join(headers.get("upgrade", [])).lower():
            key = headers.get("sec-websocket-key", [""])[0]
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            await writer.drain()
            # After the upgrade the proxy is a pipe: echo what comes.
            data = await asyncio.wait_for(reader.read(1024), 5)
            writer.write(b"echo:" + data)
        elif path == "/metrics":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nsecrets")
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()


async def request(port: int, raw: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    data = await asyncio.wait_for(reader.read(), 10)
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""


async def checks(proxy: int) -> list[str]:
    failures: list[str] = []

    # X-Forwarded-For: the rightmost entry is the peer the proxy saw.
    # HTTP/1.0, so the body comes back whole rather than chunked.
    reader, writer = await request(proxy, b"GET /headers HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                                          b"X-Forwarded-For: 203.0.113.9\r\n\r\n")
    status, body = await read_response(reader)
    writer.close()
    if status != 200:
        failures.append(f"/headers through the proxy answered {status}")
    else:
        headers = json.loads(body)
        xff = ",".join(headers.get("x-forwarded-for", []))
        last = xff.split(",")[-1].strip() if xff else ""
        if last != "127.0.0.1":
            failures.append(f"X-Forwarded-For seen upstream is {xff!r}: its last entry should be 127.0.0.1")
        else:
            print(f"ok: X-Forwarded-For upstream is {xff!r}")

    # SSE: each event must arrive about when it was written.
    reader, writer = await request(proxy, b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                                          b"Connection: close\r\n\r\n")
    start = time.monotonic()
    arrivals: list[float] = []
    seen = 0
    buf = b""
    while seen < SSE_EVENTS:
        chunk = await asyncio.wait_for(reader.read(4096), 10)
        if not chunk:
            break
        buf += chunk
        now_seen = buf.count(b"event: message_chunk")
        arrivals += [time.monotonic() - start] * (now_seen - seen)
        seen = now_seen
    writer.close()
    if seen < SSE_EVENTS:
        failures.append(f"SSE: only {seen} of {SSE_EVENTS} events arrived")
    elif arrivals[0] > (SSE_EVENTS - 1) * SSE_GAP * 0.5:
        failures.append(f"SSE is buffered: the first event arrived after {arrivals[0]:.2f}s, "
                        f"the last after {arrivals[-1]:.2f}s")
    else:
        print("ok: SSE events arrived at " + ", ".join(f"{t:.2f}s" for t in arrivals))

    # WebSocket upgrade on /ws, then bytes both ways.
    key = base64.b64encode(os.urandom(16)).decode()
    reader, writer = await request(proxy, (
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not head.startswith(b"HTTP/1.1 101"):
            failures.append(f"WebSocket upgrade answered {head.splitlines()[0]!r}")
        else:
            writer.write(b"ping")
            await writer.drain()
            echo = await asyncio.wait_for(reader.read(64), 5)
            if echo != b"echo:ping":
                failures.append(f"WebSocket: after the upgrade, got {echo!r} back instead of b'echo:ping'")
            else:
                print("ok: WebSocket upgrade passed through, bytes flow both ways")
    except (asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        failures.append(f"WebSocket upgrade: {type(e).__name__}")
    writer.close()

    # /metrics stays internal.
    reader, writer = await request(proxy, b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    status, body = await read_response(reader)
    writer.close()
    if status != 404 or b"secrets" in body:
        failures.append(f"/metrics through the proxy answered {status}")
    else:
        print("ok: /metrics is not served through the proxy")
    return failures


async def main(caddy: str, caddyfile: str) -> int:
    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    upstream_port = server.sockets[0].getsockname()[1]
    proxy_port = free_port()
    env = dict(os.environ, CADDY_ADMIN="off", SPECGEN_PROXY_LISTEN=f"127.0.0.1:{proxy_port}",
               SPECGEN_UPSTREAM="127.0.0.1", SPECGEN_UPSTREAM_PORT=str(upstream_port),
               XDG_DATA_HOME=os.environ.get("TMPDIR", "/tmp"), XDG_CONFIG_HOME=os.environ.get("TMPDIR", "/tmp"))
    proc = subprocess.Popen([caddy, "run", "--config", caddyfile, "--adapter", "caddyfile"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                print(proc.stdout.read().decode(errors="replace") if proc.stdout else "")
                print("error: caddy exited before listening")
                return 1
            try:
                socket.create_connection(("127.0.0.1", proxy_port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    print("error: caddy did not listen within 10 s")
                    return 1
                await asyncio.sleep(0.1)
        failures = await asyncio.wait_for(checks(proxy_port), 20)
    finally:
        proc.terminate()
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.close()
    for f in failures:
        print(f"error: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
