# A WebSocket peer on Python's `websockets` (Debian's python3-websockets,
# 10.x) for spec/websocket_spec.lua. Run with /usr/bin/python3.
#
#   ws_peer.py server [certfile keyfile]   serve on 127.0.0.1; prints "PORT n"
#     /echo         echo every message, same kind
#     /fragments    echo every message as fragments of about a third each
#     /ping         ping "py-ping", then send "pong <payload>" once the pong came; then echo
#     /close        the first message is "code reason": close with them
#     /report       echo; when the connection closes print "CLOSED code reason"
#     /subprotocol  (subprotocols chat, superchat) send the subprotocol chosen
#   ws_peer.py client url scenario [cafile]  talk to a server; prints what it saw
#     (echo sends a fragmented text message from an async iterator, a binary one
#     from a list)
import asyncio
import ssl
import sys

import websockets


def log(*args):
    print(*args, flush=True)


def thirds(msg):
    n = max(1, len(msg) // 3)
    return [msg[i:i + n] for i in range(0, len(msg), n)] or [msg]


async def handler(ws, path=None):
    path = path or ws.path
    try:
        if path == "/echo" or path == "/report":
            async for msg in ws:
                await ws.send(msg)
        elif path == "/fragments":
            async for msg in ws:
                await ws.send(thirds(msg))
        elif path == "/ping":
            waiter = await ws.ping(b"py-ping")
            await waiter
            await ws.send("pong py-ping")
            async for msg in ws:
                await ws.send(msg)
        elif path == "/close":
            msg = await ws.recv()
            code, _, reason = msg.partition(" ")
            await ws.close(int(code), reason)
        elif path == "/subprotocol":
            await ws.send(str(ws.subprotocol))
            async for msg in ws:
                await ws.send(msg)
    except websockets.ConnectionClosed:
        pass
    if path == "/report":
        await ws.wait_closed()
        log("CLOSED", ws.close_code, ws.close_reason)


async def serve(args):
    ctx = None
    if args:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args[0], args[1])
    async with websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=None,
                                subprotocols=["chat", "superchat"], compression=None,
                                ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        log("PORT", port)
        await asyncio.Future()


async def client(url, scenario, cafile=None):
    ctx = None
    if url.startswith("wss:"):
        ctx = ssl.create_default_context(cafile=cafile)
    kw = dict(max_size=None, compression=None, ping_interval=None, ssl=ctx)
    if scenario == "subprotocol":
        kw["subprotocols"] = ["superchat", "chat"]
    async with websockets.connect(url, **kw) as ws:
        if scenario == "echo":
            await ws.send("hello, wörld")
            r = await ws.recv()
            log("TEXT", type(r).__name__, r == "hello, wörld")
            await ws.send(b"\x00\xff\x80binary")
            r = await ws.recv()
            log("BINARY", type(r).__name__, r == b"\x00\xff\x80binary")
            big = bytes(range(256)) * (4 * 1024 * 1024 // 256)
            await ws.send(big)
            r = await ws.recv()
            log("BIG", type(r).__name__, len(r), r == big)
            async def fragments():
                for piece in ["frag", "ment", "ed é"]:
                    yield piece
                    await asyncio.sleep(0)
            await ws.send(fragments())
            r = await ws.recv()
            log("FRAGMENTED", type(r).__name__, r == "fragmented é")
            await ws.send([b"\x01" * 70000, b"\x02" * 5, b"\x03" * 70000])
            r = await ws.recv()
            log("FRAGMENTED_BINARY", type(r).__name__,
                r == b"\x01" * 70000 + b"\x02" * 5 + b"\x03" * 70000)
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
            log("PONG")
            await ws.close(4000, "bye from python")
            log("CLOSED", ws.close_code, ws.close_reason)
        elif scenario == "server_closes":
            await ws.send("close me")
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed as e:
                log("CLOSED", ws.close_code, ws.close_reason)
        elif scenario == "subprotocol":
            log("PROTOCOL", ws.subprotocol)
            await ws.close()
        elif scenario == "oversized":
            await ws.send(b"x" * (2 * 1024 * 1024))
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed:
                log("CLOSED", ws.close_code, ws.close_reason)
        elif scenario == "bad_utf8":
            # a text frame with invalid UTF-8, written raw (the library refuses to)
            await ws.send(b"ok")
            await ws.recv()
            ws.transport.write(bytes([0x81, 0x82, 1, 2, 3, 4, 0xff ^ 1, 0xfe ^ 2]))
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed:
                log("CLOSED", ws.close_code, ws.close_reason)


def main():
    if sys.argv[1] == "server":
        asyncio.run(serve(sys.argv[2:]))
    else:
        asyncio.run(client(*sys.argv[2:]))


if __name__ == "__main__":
    main()
