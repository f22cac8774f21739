#!/usr/bin/env python3
"""A tiny LSP server over stdio for the Neovim tests.

Requests: initialize, shutdown; test/echo (answers its params at once);
test/slow (answers only when cancelled, with RequestCancelled -32800);
test/cancelled (the ids of the test/slow requests cancelled so far).
Notifications: initialized, exit, $/cancelRequest.
"""
import json
import sys

inp, outp = sys.stdin.buffer, sys.stdout.buffer
pending = {}  # id of an unanswered test/slow request -> True
cancelled = []


def send(msg):
    body = json.dumps(msg).encode()
    outp.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    outp.flush()


def read():
    length = None
    while True:
        line = inp.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        k, _, v = line.partition(b":")
        if k.lower() == b"content-length":
            length = int(v)
    return json.loads(inp.read(length))


while True:
    msg = read()
    if msg is None:
        break
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "capabilities": {"hoverProvider": True},
            "serverInfo": {"name": "fake_lsp"}}})
    elif method == "shutdown":
        send({"jsonrpc": "2.0", "id": mid, "result": None})
    elif method == "exit":
        break
    elif method == "test/echo":
        send({"jsonrpc": "2.0", "id": mid, "result": msg.get("params")})
    elif method == "textDocument/hover":
        send({"jsonrpc": "2.0", "id": mid, "result": {"contents": "fake hover"}})
    elif method == "test/slow":
        pending[mid] = True
    elif method == "$/cancelRequest":
        rid = msg["params"]["id"]
        if pending.pop(rid, None):
            cancelled.append(rid)
            send({"jsonrpc": "2.0", "id": rid,
                  "error": {"code": -32800, "message": "cancelled"}})
    elif method == "test/cancelled":
        send({"jsonrpc": "2.0", "id": mid, "result": cancelled})
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid,
              "error": {"code": -32601, "message": "no method " + str(method)}})
