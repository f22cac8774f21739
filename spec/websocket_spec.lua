-- cfuture.websocket against real peers on 127.0.0.1: Python's websockets
-- (spec/ws_peer.py) as server and as client, cfuture against itself, wss://
-- with the test CA; and the framing of cf._ws on its own.
local cf = require "cfuture"
local support = require "support"
local S = require "ws_support"
local websocket = require "cfuture.websocket"
local certs = require "tls_certs"

local C = S.C
local run = S.run
local have_python = S.have_python()

local function py_it(name, fn)
  if have_python then it(name, fn) else pending(name .. " (no python3-websockets)") end
end

describe("cf._ws framing", function()
  it("round-trips every length class, masked and not", function()
    for _, n in ipairs({ 0, 1, 125, 126, 127, 1000, 65535, 65536, 70000, 300000 }) do
      local payload = ("abcdefghij"):rep(math.floor(n / 10) + 1):sub(1, n)
      for _, mask in ipairs({ false, true, "\1\2\3\4" }) do
        local f = C.frame(2, payload, true, mask)
        local hdr = 2 + (n > 65535 and 8 or n > 125 and 2 or 0) + (mask and 4 or 0)
        assert.are.equal(hdr + n, #f)
        local d = C.decoder(mask and "server" or "client")
        local op, fin, p = d:next(f)
        assert.are.equal(2, op)
        assert.is_true(fin)
        assert.are.equal(n, #p)
        assert.is_true(p == payload)
        assert.are.equal(0, d:buffered())
      end
    end
  end)

  it("encodes the header bytes as RFC 6455 shows them", function()
    -- RFC 6455 5.7: a single-frame unmasked text message "Hello"
    assert.are.equal("\x81\x05\x48\x65\x6c\x6c\x6f", C.frame(1, "Hello"))
    -- a single-frame masked text message "Hello"
    assert.are.equal("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
      C.frame(1, "Hello", true, "\x37\xfa\x21\x3d"))
    -- a fragmented unmasked text message, an unmasked ping
    assert.are.equal("\x01\x03\x48\x65\x6c", C.frame(1, "Hel", false))
    assert.are.equal("\x80\x02\x6c\x6f", C.frame(0, "lo"))
    assert.are.equal("\x89\x05Hello", C.frame(9, "Hello"))
    -- 256 bytes: 16-bit length; 65536 bytes: 64-bit length
    assert.are.equal("\x82\x7e\x01\x00", C.frame(2, ("x"):rep(256)):sub(1, 4))
    assert.are.equal("\x82\x7f\0\0\0\0\0\1\0\0", C.frame(2, ("x"):rep(65536)):sub(1, 10))
    assert.are.equal(C.mask("Hello", "\x37\xfa\x21\x3d"), "\x7f\x9f\x4d\x51\x58")
  end)

  it("decodes frames fed a byte at a time and many in one slice", function()
    local wire = C.frame(1, "Hel", false, true) .. C.frame(9, "ping!", true, true)
      .. C.frame(0, "lo", true, true) .. C.frame(2, ("z"):rep(200), true, true)
      .. C.frame(8, "\3\232done", true, true)
    local function collect(feeds)
      local d, out = C.decoder("server"), {}
      for _, s in ipairs(feeds) do
        local op, fin, p, code, reason = d:next(s)
        while op do
          out[#out + 1] = table.concat({ op, tostring(fin), p, tostring(code), tostring(reason) }, "|")
          op, fin, p, code, reason = d:next()
        end
        assert.is_nil(fin)
      end
      return table.concat(out, "\n")
    end
    local bytes = {}
    for i = 1, #wire do bytes[i] = wire:sub(i, i) end
    local whole = collect({ wire })
    assert.are.equal(table.concat({ "1|false|Hel|nil|nil", "9|true|ping!|nil|nil", "0|true|lo|nil|nil",
      "2|true|" .. ("z"):rep(200) .. "|nil|nil", "8|true|\3\232done|1000|done" }, "\n"), whole)
    assert.are.equal(whole, collect(bytes))
  end)

  it("validates UTF-8 across fragments, split anywhere", function()
    local text = "añ€𝄞 ok"
    for cut = 1, #text - 1 do
      local d = C.decoder("client")
      assert.are.equal(1, (d:next(C.frame(1, text:sub(1, cut), false))))
      local op, fin, p = d:next(C.frame(0, text:sub(cut + 1)))
      assert.are.equal(0, op)
      assert.is_true(fin)
      assert.are.equal(text:sub(cut + 1), p)
    end
    -- a message whose last fragment ends inside a sequence
    local d = C.decoder("client")
    d:next(C.frame(1, "ok\xe2\x82", false))
    local op, msg, code = d:next(C.frame(0, ""))
    assert.is_nil(op)
    assert.are.equal("websocket: invalid UTF-8 in a text message", msg)
    assert.are.equal(1007, code)
    -- binary messages are not checked
    assert.are.equal(2, (C.decoder("client"):next(C.frame(2, "\xff\xfe"))))
  end)

  it("knows valid UTF-8 and valid close codes", function()
    for _, s in ipairs({ "", "ascii", "é", "€", "𝄞", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf" }) do
      assert.is_true(C.valid_utf8(s), s)
    end
    for _, s in ipairs({ "\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
      "\xf5\x80\x80\x80", "\xff", "\xe2\x82", "a\xc3" }) do
      assert.is_false(C.valid_utf8(s), ("%q"):format(s))
    end
    for _, c in ipairs({ 1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999 }) do
      assert.is_true(C.valid_close_code(c), c)
    end
    for _, c in ipairs({ 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 1000.5, "1000" }) do
      assert.is_false(C.valid_close_code(c), tostring(c))
    end
  end)

  it("counts the message limit across fragments and allows control frames between", function()
    local d = C.decoder("client", 10)
    assert.are.equal(2, (d:next(C.frame(2, "12345", false))))
    assert.are.equal(9, (d:next(C.frame(9, "ping in between"))))
    assert.are.equal(0, (d:next(C.frame(0, "6789", false))))
    assert.are.equal(0, (d:next(C.frame(0, "0", true))))
    -- a new message starts from zero; 11 bytes over two fragments is over
    assert.are.equal(2, (d:next(C.frame(2, "123456", false))))
    local op, msg, code = d:next(C.frame(0, "78901"))
    assert.is_nil(op)
    assert.are.equal("websocket: message over the limit of 10 bytes", msg)
    assert.are.equal(1009, code)
    -- dead: the same failure again, whatever comes
    assert.are.same({ nil, msg, 1009 }, { d:next(C.frame(1, "x")) })
    assert.matches("^cfuture%.ws%.Decoder%(client, failed%): 0x", tostring(d))
  end)

  it("refuses bad arguments with the function's name", function()
    assert.has_error(function() C.frame(16, "") end, "websocket.frame: argument #1 must be an integer from 0 to 15 (got 16)")
    assert.has_error(function() C.frame(1, {}) end, "websocket.frame: argument #2 must be a string (got table)")
    assert.has_error(function() C.frame(1, "", true, "abc") end, "websocket.frame: argument #4 must be a 4-byte mask key")
    assert.has_error(function() C.decoder("peer") end, 'websocket.decoder: argument #1 must be "server" or "client" (got "peer")')
    assert.has_error(function() C.decoder("client"):next({}) end)
    assert.has_error(function() C.decoder("client").next({}) end,
      "decoder:next: argument #1 must be a WebSocket decoder (call it with a colon; got table)")
  end)
end)

describe("websocket arguments", function()
  it("refuses bad URLs and options", function()
    assert.has_error(function() websocket.connect("http://x/") end,
      'websocket.connect: argument #1 must be a ws:// or wss:// URL (got "http://x/")')
    assert.has_error(function() websocket.connect(42) end,
      "websocket.connect: argument #1 must be a URL string (got number)")
    assert.has_error(function() websocket.connect("ws://h/", { tiemout = 1 }) end,
      "websocket.connect: unknown option tiemout")
    assert.has_error(function() websocket.connect("ws://h/", { headers = { X = "a\r\nB: c" } }) end,
      "websocket.connect: header X contains CR, LF or NUL")
    assert.has_error(function() websocket.connect("ws://h:99999/") end,
      'websocket.connect: argument #1 has a bad port (got "ws://h:99999/")')
    assert.has_error(function() websocket.connect("ws://h/", { protocols = { "a b" } }) end,
      "websocket.connect: option protocols[1] must be a token (got a b)")
    assert.has_error(function() websocket.wrap({}) end, "websocket.wrap: argument #1 must be a stream (got table)")
    local p = websocket._parse_url
    assert.are.same({ "ws", "example.org", 80, "/", "example.org" }, { p("ws://example.org", "f") })
    assert.are.same({ "wss", "::1", 8443, "/a?b=c", "[::1]:8443" }, { p("wss://[::1]:8443/a?b=c", "f") })
    assert.are.same({ "ws", "h", 81, "/?q", "h:81" }, { p("WS://h:81?q", "f") })
  end)

  it("refuses misuse of a WebSocket's methods", function()
    run(function()
      local a, b = S.pair()
      local ws = websocket.wrap(a, { side = "client" })
      assert.has_error(function() ws:send(42) end, "websocket:send: argument #1 must be a string (got number)")
      assert.has_error(function() ws:send("x", "utf8") end,
        'websocket:send: argument #2 must be "text" or "binary" (got "utf8")')
      assert.has_error(function() ws:send("\xff") end,
        'websocket:send: argument #1 is not valid UTF-8 (send it as "binary")')
      assert.has_error(function() ws:ping(("x"):rep(126)) end, "websocket:ping: argument #1 must be at most 125 bytes")
      assert.has_error(function() ws:send({}) end,
        "websocket:send: argument #1 must be a string or a non-empty list of strings")
      assert.has_error(function() ws:send({ "a", 2 }) end, "websocket:send: argument #1[2] must be a string (got number)")
      assert.has_error(function() ws:send({ "ok\xe2", "\x82" }) end,
        'websocket:send: argument #1 is not valid UTF-8 (send it as "binary")')
      -- a sequence split between fragments is fine; the frames go out as fragments
      assert.is_true(ws:send({ "ok\xe2", "\x82\xac" }):await())
      local dec, seen = C.decoder("server"), {}
      while #seen < 6 do
        local op, fin, p = dec:next(b:read():await())
        while op do
          seen[#seen + 1], seen[#seen + 2], seen[#seen + 3] = op, fin, p
          op, fin, p = dec:next()
        end
      end
      assert.are.same({ 1, false, "ok\xe2", 0, true, "\x82\xac" }, seen)
      assert.has_error(function() ws:close(1005) end,
        "websocket:close: argument #1 must be a close code (1000-1003, 1007-1014, 3000-4999; got 1005)")
      assert.has_error(function() ws:close(1000, ("x"):rep(124)) end, "websocket:close: argument #2 must be at most 123 bytes")
      assert.has_error(function() ws.send({}, "x") end,
        "websocket:send: argument #1 must be a WebSocket (call it with a colon; got table)")
      assert.matches("^cfuture%.WebSocket%(client, open%)", tostring(ws))
      -- two receives at once: the second raises
      local r1 = cf.spawn(ws:receive())
      cf.yield_now():await()
      local ok, err = pcall(function() return ws:receive():await() end)
      assert.is_false(ok)
      assert.matches("websocket:receive: another task is already receiving on this WebSocket", err)
      r1:abort()
      a:close()
      b:close()
    end)
  end)
end)

describe("websocket annotations", function()
  it("library/cfuture/websocket.lua declares every function and method", function()
    local meta = support.read_file("library/cfuture/websocket.lua")
    local declared = {}
    for owner, name in meta:gmatch("\nfunction (%w+)[.:]([%w_]+)%(") do declared[owner .. "." .. name] = true end
    local want = {}
    for k, v in pairs(websocket) do
      if type(v) == "function" and not k:match("^_") then want["websocket." .. k] = true end
    end
    run(function()
      local a, b = S.pair()
      local ws = websocket.wrap(a, { side = "server" })
      for k, v in pairs(getmetatable(ws)) do
        if type(v) == "function" and not k:match("^_") then want["WebSocket." .. k] = true end
      end
      a:close()
      b:close()
    end)
    assert.are.same(want, declared)
  end)
end)

describe("websocket client against Python's websockets", function()
  py_it("exchanges text, binary, empty and 4 MiB messages", function()
    run(function()
      local p, port = S.python_server()
      local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/echo"):await())
      assert.are.equal("client", ws.side)
      assert.is_true(ws:send("hello, wörld"):await())
      assert.are.same({ "hello, wörld", "text" }, { ws:receive():await() })
      assert.is_true(ws:send("\0\1\255", "binary"):await())
      assert.are.same({ "\0\1\255", "binary" }, { ws:receive():await() })
      assert.is_true(ws:send(""):await())
      assert.are.same({ "", "text" }, { ws:receive():await() })
      local parts = {}
      for i = 0, 4 * 1024 * 1024 / 256 - 1 do parts[#parts + 1] = string.char(i % 256):rep(256) end
      local big = table.concat(parts)
      assert.is_true(ws:send(big, "binary"):await())
      local got, kind = ws:receive():await()
      assert.are.equal("binary", kind)
      assert.are.equal(#big, #got)
      assert.is_true(got == big)
      -- a message sent as fragments comes back whole
      assert.is_true(ws:send({ "frag", "men", "ted ü" }):await())
      assert.are.same({ "fragmented ü", "text" }, { ws:receive():await() })
      assert.is_true(ws:send({ ("\1"):rep(70000), "", "\2" }, "binary"):await())
      assert.are.same({ ("\1"):rep(70000) .. "\2", "binary" }, { ws:receive():await() })
      -- several in flight at once come back in order
      for i = 1, 50 do ws:send("m" .. i):await() end
      for i = 1, 50 do assert.are.equal("m" .. i, (ws:receive():await())) end
      assert.is_true(ws:close():await())
      assert.are.equal(1000, ws.close_code)
      assert.is_true(ws:stream():is_closed())
      local d, msg, code = ws:receive():await()
      assert.is_nil(d)
      assert.are.equal("websocket: the connection is closed", msg)
      assert.are.equal("ECLOSED", code)
      S.stop(p)
    end)
  end)

  py_it("reassembles fragmented messages", function()
    run(function()
      local p, port = S.python_server()
      local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/fragments"):await())
      local text = ("ünïcødé text "):rep(1000)
      ws:send(text):await()
      assert.are.same({ text, "text" }, { ws:receive():await() })
      local bin = ("\0\255"):rep(100000)
      ws:send(bin, "binary"):await()
      local got, kind = ws:receive():await()
      assert.are.equal("binary", kind)
      assert.is_true(got == bin)
      ws:close():await()
      S.stop(p)
    end)
  end)

  py_it("answers the server's ping and sees pongs to its own", function()
    run(function()
      local p, port = S.python_server()
      local pongs, pings = {}, {}
      local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/ping", {
        on_pong = function(d) pongs[#pongs + 1] = d end,
        on_ping = function(d) pings[#pings + 1] = d end,
      }):await())
      -- the server sends this only after our automatic pong arrived
      assert.are.same({ "pong py-ping", "text" }, { ws:receive():await() })
      assert.are.same({ "py-ping" }, pings)
      assert.is_true(ws:ping("from lua"):await())
      ws:send("after ping"):await()
      assert.are.equal("after ping", (ws:receive():await()))
      assert.are.same({ "from lua" }, pongs)
      ws:close():await()
      S.stop(p)
    end)
  end)

  py_it("gets the server's close code and reason, and sends its own", function()
    run(function()
      local p, port = S.python_server()
      local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/close"):await())
      ws:send("4001 going away now"):await()
      local d, msg, code, ccode, reason = ws:receive():await()
      assert.is_nil(d)
      assert.are.equal("ECLOSED", code)
      assert.are.equal("websocket: the connection is closed", msg)
      assert.are.equal(4001, ccode)
      assert.are.equal("going away now", reason)
      assert.are.equal(4001, ws.close_code)
      assert.are.equal("going away now", ws.close_reason)
      assert.is_true(ws:stream():is_closed())
      -- close after the peer's close: nothing more to do
      assert.is_true(ws:close():await())
      S.stop(p)

      p, port = S.python_server()
      ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/report"):await())
      ws:send("x"):await()
      assert.are.equal("x", (ws:receive():await()))
      assert.is_true(ws:close(4321, "lua says bye"):await())
      assert.are.equal("CLOSED 4321 lua says bye", S.line(p))
      assert.are.equal(4321, ws.close_code) -- the server echoed it
      S.stop(p)
    end)
  end)

  py_it("negotiates a subprotocol and sends extra headers", function()
    run(function()
      local p, port = S.python_server()
      local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/subprotocol", {
        protocols = { "nope", "superchat" }, headers = { ["X-Test"] = "1" }, origin = "http://localhost",
      }):await())
      assert.are.equal("superchat", ws.protocol)
      assert.are.same({ "superchat", "text" }, { ws:receive():await() })
      ws:close():await()
      -- no subprotocol offered: none chosen
      ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/subprotocol"):await())
      assert.is_nil(ws.protocol)
      assert.are.same({ "None", "text" }, { ws:receive():await() })
      ws:close():await()
      S.stop(p)
    end)
  end)

  py_it("iterates messages until the close", function()
    run(function()
      local p, port = S.python_server()
      local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/close"):await())
      ws:send("1000 done"):await()
      local n = 0
      for _ in ws:messages() do n = n + 1 end
      assert.are.equal(0, n)
      assert.are.equal(1000, ws.close_code)
      S.stop(p)
    end)
  end)

  py_it("connects over wss:// with the test CA and refuses an untrusted server", function()
    run(function()
      local p, port = S.python_server({ certs.path("server.pem"), certs.path("server.key") })
      local ws = assert(websocket.connect("wss://localhost:" .. port .. "/echo", {
        tls = { cafile = certs.path("ca.pem") } }):await())
      assert.are.equal("TLSv1.3", ws:stream():tls_info().protocol)
      ws:send(("secure "):rep(10000)):await()
      assert.are.equal(("secure "):rep(10000), (ws:receive():await()))
      assert.is_true(ws:close():await())
      local none, msg, code = websocket.connect("wss://localhost:" .. port .. "/echo", {
        tls = { cafile = certs.path("rogue_ca.pem") } }):await()
      assert.is_nil(none)
      assert.matches("^websocket.connect: ", msg)
      assert.are.equal("ECERTUNTRUSTED", code)
      S.stop(p)
    end)
  end)
end)

describe("websocket server with Python's websockets as the client", function()
  py_it("echoes text, binary, 4 MiB and fragmented messages, answers a ping, takes a close", function()
    run(function()
      local done = cf.notify()
      local seen = {}
      local port, stop = S.server(function(ws)
        S.echo(ws)
        seen.code, seen.reason = ws.close_code, ws.close_reason
        done:notify_one()
      end)
      local p = S.python({ "client", "ws://127.0.0.1:" .. port .. "/", "echo" })
      assert.are.equal("TEXT str True", S.line(p))
      assert.are.equal("BINARY bytes True", S.line(p))
      assert.are.equal("BIG bytes 4194304 True", S.line(p))
      assert.are.equal("FRAGMENTED str True", S.line(p))
      assert.are.equal("FRAGMENTED_BINARY bytes True", S.line(p))
      assert.are.equal("PONG", S.line(p))
      assert.are.equal("CLOSED 4000 bye from python", S.line(p))
      done:wait():await()
      assert.are.same({ code = 4000, reason = "bye from python" }, seen)
      assert.are.equal(0, (p:wait():await()))
      stop()
    end)
  end)

  py_it("closes with its own code, and picks a subprotocol", function()
    run(function()
      local port, stop = S.server(function(ws)
        assert.are.equal("close me", (ws:receive():await()))
        assert.is_true(ws:close(4002, "server done"):await())
      end)
      local p = S.python({ "client", "ws://127.0.0.1:" .. port .. "/", "server_closes" })
      assert.are.equal("CLOSED 4002 server done", S.line(p))
      assert.are.equal(0, (p:wait():await()))
      stop()

      port, stop = S.server(function(ws) ws:receive():await() end, { protocols = { "chat", "other" } })
      p = S.python({ "client", "ws://127.0.0.1:" .. port .. "/", "subprotocol" })
      assert.are.equal("PROTOCOL chat", S.line(p))
      assert.are.equal(0, (p:wait():await()))
      stop()
    end)
  end)

  py_it("serves wss:// to Python", function()
    run(function()
      local port, stop = S.server(S.echo, { tls = { certfile = certs.path("server.pem"),
        keyfile = certs.path("server.key") } })
      local p = S.python({ "client", "wss://localhost:" .. port .. "/", "echo", certs.path("ca.pem") })
      for _, want in ipairs({ "TEXT str True", "BINARY bytes True", "BIG bytes 4194304 True",
        "FRAGMENTED str True", "FRAGMENTED_BINARY bytes True", "PONG", "CLOSED 4000 bye from python" }) do
        assert.are.equal(want, S.line(p))
      end
      assert.are.equal(0, (p:wait():await()))
      stop()
    end)
  end)
end)

describe("websocket cfuture to cfuture", function()
  it("exchanges messages both ways, pings, and closes from either side", function()
    run(function()
      local server_pongs = {}
      local got = cf.channel(10)
      local port, stop = S.server(function(ws)
        assert.is_true(ws:ping("srv"):await())
        for data, kind in ws:messages() do
          got:send({ data, kind }):await()
          if data == "close please" then
            assert.is_true(ws:close(3001, "as asked"):await())
            break
          end
          ws:send(data:upper(), kind):await()
        end
        got:send({ "end", ws.close_code, ws.close_reason }):await()
      end, { on_pong = function(d) server_pongs[#server_pongs + 1] = d end })
      local pings = {}
      local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/chat",
        { on_ping = function(d) pings[#pings + 1] = d end }):await())
      ws:send("abc"):await()
      assert.are.same({ "ABC", "text" }, { ws:receive():await() })
      assert.are.same({ "srv" }, pings)
      ws:send("bin\0", "binary"):await()
      assert.are.same({ "BIN\0", "binary" }, { ws:receive():await() })
      local big = ("q"):rep(3 * 1024 * 1024)
      ws:send(big):await()
      assert.is_true((ws:receive():await()) == big:upper())
      assert.are.same({ "abc", "text" }, got:recv():await())
      assert.are.same({ "bin\0", "binary" }, got:recv():await())
      assert.are.same({ big, "text" }, got:recv():await())
      assert.are.same({ "srv" }, server_pongs)
      ws:send("close please"):await()
      local d, _, code, ccode, reason = ws:receive():await()
      assert.is_nil(d)
      assert.are.same({ "ECLOSED", 3001, "as asked" }, { code, ccode, reason })
      assert.are.same({ "close please", "text" }, got:recv():await())
      -- the server saw our echo of its code
      assert.are.same({ "end", 3001, "as asked" }, got:recv():await())
      stop()
    end)
  end)

  it("closes from the client while the server's receive waits, and after that sends fail", function()
    run(function()
      local result = cf.channel(1)
      local port, stop = S.server(function(ws)
        local d, msg, code, ccode, reason = ws:receive():await()
        result:send({ d, msg, code, ccode, reason, ws:stream():is_closed() }):await()
      end)
      local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/"):await())
      assert.is_true(ws:close(1001, "leaving"):await())
      assert.are.same({ nil, "websocket: the connection is closed", "ECLOSED", 1001, "leaving", true },
        result:recv():await())
      assert.are.same({ nil, "websocket: the connection is closed", "ECLOSED", 1001, "leaving" },
        { ws:send("late"):await() })
      stop()
    end)
  end)

  it("close() waits for a receive under way in another task to see the peer's close", function()
    run(function()
      local port, stop = S.server(function(ws) S.echo(ws) end)
      local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/"):await())
      local reader = cf.spawn(function() return ws:receive():await() end)
      cf.yield_now():await()
      assert.is_true(ws:close(1000):await())
      local r = { reader:await() }
      assert.are.equal("ECLOSED", r[3])
      assert.is_true(ws:stream():is_closed())
      stop()
    end)
  end)

  it("serves wss:// to itself with verification on", function()
    run(function()
      local port, stop = S.server(S.echo, { tls = { certfile = certs.path("server.pem"),
        keyfile = certs.path("server.key") } })
      local ws = assert(websocket.connect("wss://localhost:" .. port .. "/", {
        tls = { cafile = certs.path("ca.pem") } }):await())
      ws:send("over tls"):await()
      assert.are.equal("over tls", (ws:receive():await()))
      assert.is_true(ws:close():await())
      stop()
    end)
  end)

  it("refuses requests that are not WebSocket upgrades", function()
    run(function()
      local refusals = cf.channel(10)
      local port, stop = S.server(function() end, { on_refused = function(err, code, status)
        refusals:send({ err, code, status }):await()
      end })
      local function raw(req)
        local s = assert(cf.net.connect("127.0.0.1", port):await())
        s:write(req):await()
        local line = s:read_line():await()
        s:close()
        return line
      end
      local base = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      assert.are.equal("HTTP/1.1 426 Upgrade Required",
        raw(base .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"))
      assert.are.same({ "websocket.accept: unsupported WebSocket version (13 is supported)", "EPROTO", 426 },
        refusals:recv():await())
      assert.are.equal("HTTP/1.1 400 Bad Request", raw(base .. "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"))
      assert.are.same({ "websocket.accept: bad Sec-WebSocket-Key", "EPROTO", 400 }, refusals:recv():await())
      assert.are.equal("HTTP/1.1 400 Bad Request", raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.are.same({ "websocket.accept: not a WebSocket upgrade (no Upgrade: websocket)", "EPROTO", 400 },
        refusals:recv():await())
      assert.are.equal("HTTP/1.1 405 Method Not Allowed", raw("POST / HTTP/1.1\r\nHost: x\r\n\r\n"))
      refusals:recv():await()
      stop()
    end)
  end)

  it("computes the RFC's sample accept key", function()
    run(function()
      assert.are.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", websocket._accept_key("dGhlIHNhbXBsZSBub25jZQ=="))
    end)
  end)
end)
