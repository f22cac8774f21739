-- cfuture.websocket against hostile peers: frames that break RFC 6455 in
-- every way the decoder checks, bad handshake answers, a peer that never
-- answers the close, resets and ends mid-frame, and a fuzz loop over the
-- decoder. Each gives its documented failure, a close frame with the right
-- code where one can still go out, and no leaked descriptor.
local cf = require "cfuture"
local support = require "support"
local S = require "ws_support"
local websocket = require "cfuture.websocket"

local C = S.C
local run = S.run
local slow = S.slow

local function fd_settled(before)
  -- the descriptors of closed streams go once libuv's close callbacks ran
  for _ = 1, 50 do
    support.full_gc()
    if support.fd_count() <= before then return true end
    cf.sleep(10):await()
  end
  return support.fd_count() <= before
end

-- Our side is `side`, wrapping one end of a TCP pair; `bytes` come from the
-- raw other end. Returns what receive gave and the close frame the raw end
-- got back (op, code, reason).
local function violate(side, bytes, opts)
  local ours, raw = S.pair()
  local o = { side = side, close_timeout = 5000 * slow }
  for k, v in pairs(opts or {}) do o[k] = v end
  local ws = websocket.wrap(ours, o)
  local got = cf.spawn(function() return { ws:receive():await() } end)
  assert(raw:write(bytes):await())
  -- the raw end decodes what we answer with the other side's rules
  local op, _, _, code, reason = S.read_frame(raw, side == "server" and "client" or "server", 8)
  raw:close()
  local r = got:await()
  return r, { op, code, reason }, ws
end

local masked = true

describe("websocket frames that break the protocol", function()
  local cases = {
    { "an unmasked frame from a client", "server", function() return C.frame(1, "hi") end,
      "websocket: unmasked frame from the client", "EPROTO", 1002 },
    { "a masked frame from a server", "client", function() return C.frame(1, "hi", true, masked) end,
      "websocket: masked frame from the server", "EPROTO", 1002 },
    { "reserved bits without an extension", "server", function() return C.frame(1, "hi", true, masked, 4) end,
      "websocket: reserved bits set (no extension agreed)", "EPROTO", 1002 },
    { "a control frame over 125 bytes", "server", function() return C.frame(9, ("p"):rep(126), true, masked) end,
      "websocket: control frame over 125 bytes", "EPROTO", 1002 },
    { "a fragmented control frame", "server", function() return C.frame(9, "p", false, masked) end,
      "websocket: fragmented control frame", "EPROTO", 1002 },
    { "an unknown opcode", "server", function() return C.frame(3, "x", true, masked) end,
      "websocket: unknown opcode 3", "EPROTO", 1002 },
    { "an unknown control opcode", "client", function() return C.frame(11, "x") end,
      "websocket: unknown opcode 11", "EPROTO", 1002 },
    { "a continuation outside a message", "server", function() return C.frame(0, "x", true, masked) end,
      "websocket: continuation frame outside a message", "EPROTO", 1002 },
    { "a new message inside a fragmented one", "server",
      function() return C.frame(1, "a", false, masked) .. C.frame(2, "b", true, masked) end,
      "websocket: new message inside a fragmented one", "EPROTO", 1002 },
    { "a message over the limit", "server", function() return C.frame(2, ("x"):rep(1001), true, masked) end,
      "websocket: message over the limit of 1000 bytes", "EMSGSIZE", 1009, { max_message = 1000 } },
    { "a fragmented message over the limit", "server",
      function() return C.frame(2, ("x"):rep(600), false, masked) .. C.frame(0, ("x"):rep(600), true, masked) end,
      "websocket: message over the limit of 1000 bytes", "EMSGSIZE", 1009, { max_message = 1000 } },
    { "a frame announcing 1 TiB (refused before any payload)", "client",
      function() return "\x82\x7f\0\0\1\0\0\0\0\0" end,
      "websocket: message over the limit of 16777216 bytes", "EMSGSIZE", 1009 },
    { "a length with the top bit set", "client", function() return "\x82\x7f\x80\0\0\0\0\0\0\0" end,
      "websocket: frame length over 2^63", "EPROTO", 1002 },
    { "invalid UTF-8 in a text message", "server", function() return C.frame(1, "ok\xc0\xaf", true, masked) end,
      "websocket: invalid UTF-8 in a text message", "EILSEQ", 1007 },
    { "a text message ending inside a sequence", "client",
      function() return C.frame(1, "ok\xe2", false) .. C.frame(0, "\x82") .. C.frame(0, "") end,
      "websocket: invalid UTF-8 in a text message", "EILSEQ", 1007 },
    { "invalid UTF-8 in a close reason", "server", function() return C.frame(8, "\3\232\xff", true, masked) end,
      "websocket: invalid UTF-8 in a close reason", "EILSEQ", 1007 },
    { "a close code that may not be sent (1005)", "server", function() return C.frame(8, "\3\237", true, masked) end,
      "websocket: invalid close code 1005", "EPROTO", 1002 },
    { "a close code below 1000", "client", function() return C.frame(8, "\0\1") end,
      "websocket: invalid close code 1", "EPROTO", 1002 },
    { "a close frame of one byte", "server", function() return C.frame(8, "\3", true, masked) end,
      "websocket: close frame of 1 byte", "EPROTO", 1002 },
  }
  for _, case in ipairs(cases) do
    local name, side, bytes, msg, code, close_code, opts = (table.unpack or unpack)(case)
    it(("fails on %s (%s, close %d)"):format(name, code, close_code), function()
      run(function()
        local r, frame, ws = violate(side, bytes(), opts)
        assert.are.same({ nil, msg, code }, { r[1], r[2], r[3] })
        assert.are.same({ 8, close_code }, { frame[1], frame[2] })
        assert.are.equal(msg, frame[3])
        -- sticky: later receives and sends give the same failure
        assert.are.same({ nil, msg, code }, { ws:receive():await() })
        assert.are.same({ nil, msg, code }, { ws:send("x"):await() })
        assert.is_true(ws:stream():is_closed())
        assert.is_true(ws:is_closed())
        assert.are.same({ nil, msg, code }, { ws:close():await() })
      end)
    end)
  end

  it("answers pings inside a fragmented message and still reassembles it", function()
    run(function()
      local ours, raw = S.pair()
      local ws = websocket.wrap(ours, { side = "server" })
      raw:write(C.frame(1, "frag", false, masked) .. C.frame(9, "p1", true, masked)
        .. C.frame(0, "men", false, masked) .. C.frame(10, "unasked", true, masked)
        .. C.frame(0, "ted", true, masked)):await()
      assert.are.same({ "fragmented", "text" }, { ws:receive():await() })
      local op, _, payload = S.read_frame(raw, "client")
      assert.are.same({ 10, "p1" }, { op, payload })
      ours:close()
      raw:close()
    end)
  end)
end)

describe("websocket transport failures", function()
  it("a peer that never answers the close: close times out and closes the stream", function()
    run(function()
      local ours, raw = S.pair()
      local ws = websocket.wrap(ours, { side = "client", close_timeout = 200 * slow })
      local t0 = cf.now()
      local ok, msg, code = ws:close(1000, "bye"):await()
      local took = cf.now() - t0
      assert.is_nil(ok)
      assert.are.equal(("websocket:close: no close frame from the peer within %d ms"):format(200 * slow), msg)
      assert.are.equal("ETIMEDOUT", code)
      assert.is_true(took >= 200 * slow)
      assert.is_true(ours:is_closed())
      -- the silent peer got our close frame, then the end of the stream
      local op, _, _, ccode, reason = S.read_frame(raw, "server", 8)
      assert.are.same({ 8, 1000, "bye" }, { op, ccode, reason })
      assert.is_nil(raw:read():await())
      assert.are.same({ nil, msg, "ETIMEDOUT", 1006 }, { ws:receive():await() })
      raw:close()
    end)
  end)

  it("a reset in the middle of a frame", function()
    run(function()
      local ours, raw = S.pair()
      local ws = websocket.wrap(ours, { side = "server" })
      raw:write(C.frame(2, ("x"):rep(1000), true, masked):sub(1, 500)):await()
      local got = cf.spawn(function() return { ws:receive():await() } end)
      -- the reset must find the half frame read (Linux reads a reset that
      -- arrives behind unread data as the end of the stream)
      while ws._dec:buffered() < 500 do cf.sleep(1):await() end
      raw:reset()
      local r = got:await()
      assert.is_nil(r[1])
      assert.matches("^websocket: ", r[2])
      assert.are.equal("ECONNRESET", r[3])
      assert.are.equal(1006, ws.close_code)
      assert.is_true(ours:is_closed())
    end)
  end)

  it("the end of the stream in the middle of a frame, and without a close frame", function()
    run(function()
      for _, bytes in ipairs({ C.frame(1, "half a frame", true, masked):sub(1, 7), "" }) do
        local ours, raw = S.pair()
        local ws = websocket.wrap(ours, { side = "server" })
        if bytes ~= "" then raw:write(bytes):await() end
        raw:close()
        assert.are.same({ nil, "websocket: the connection ended without a close frame", "EOF", 1006 },
          { ws:receive():await() })
        assert.are.equal(1006, ws.close_code)
        assert.is_true(ours:is_closed())
      end
    end)
  end)

  it("a peer that goes away while close waits", function()
    run(function()
      local ours, raw = S.pair()
      local ws = websocket.wrap(ours, { side = "client" })
      local closing = cf.spawn(function() return { ws:close():await() } end)
      S.read_frame(raw, "server", 8)
      raw:close()
      assert.are.same({ nil, "websocket: the connection ended without a close frame", "EOF" }, closing:await())
    end)
  end)

  it("a cancelled receive loses no bytes of a frame arriving in pieces", function()
    run(function()
      local ours, raw = S.pair()
      local ws = websocket.wrap(ours, { side = "server" })
      local f = C.frame(1, "patience", true, masked) .. C.frame(1, "pays", false, masked)
        .. C.frame(0, " off", true, masked)
      local got = {}
      for i = 1, #f do
        raw:write(f:sub(i, i)):await()
        local r = { cf.timeout(1, ws:receive()):await() }
        if r[2] ~= "timeout" then got[#got + 1] = r[1] end
      end
      while #got < 2 do got[#got + 1] = ws:receive():await() end
      assert.are.same({ "patience", "pays off" }, got)
      ours:close()
      raw:close()
    end)
  end)
end)

-- A raw HTTP server that answers the handshake with respond(key) (a
-- string of bytes, or nil to say nothing and keep the connection open).
local function raw_server(respond)
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  local conns = {}
  local task = cf.spawn(function()
    for conn in l:incoming() do
      conns[#conns + 1] = conn
      cf.spawn(function()
        local head = conn:read_until("\r\n\r\n"):await()
        if not head then return end
        local key = head:match("\r\n[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: ([^\r\n]+)")
        local answer = respond(key and websocket._accept_key(key), head)
        if answer == false then conn:close() elseif answer then conn:write(answer):await() end
      end)
    end
  end)
  return port, function()
    l:close()
    task:abort()
    for _, c in ipairs(conns) do if not c:is_closed() then c:close() end end
  end
end

local function ok101(accept, extra)
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    .. "Sec-WebSocket-Accept: " .. accept .. "\r\n" .. (extra or "") .. "\r\n"
end

describe("websocket.connect against bad handshake answers", function()
  local cases = {
    { "a wrong accept key", function() return ok101("c29tZXRoaW5nIGVsc2U=") end,
      "websocket.connect: wrong Sec-WebSocket-Accept from the server", "EPROTO" },
    { "200 instead of 101", function() return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi" end,
      "websocket.connect: the server answered 200 OK, not 101", "EPROTO" },
    { "a 101 without Upgrade", function(a)
      return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " .. a .. "\r\n\r\n"
    end, "websocket.connect: the 101 response lacks Upgrade: websocket", "EPROTO" },
    { "a subprotocol that was not offered", function(a) return ok101(a, "Sec-WebSocket-Protocol: evil\r\n") end,
      'websocket.connect: the server chose subprotocol "evil", which was not offered', "EPROTO" },
    { "an extension that was not offered", function(a)
      return ok101(a, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
    end, "websocket.connect: the server chose an extension that was not offered", "EPROTO" },
    { "a closed connection before any answer", function() return false end,
      "websocket.connect: the connection closed before the response head", "EPROTO" },
    { "a head that never ends", function() return "HTTP/1.1 101 OK\r\n" .. ("X-Filler: yes\r\n"):rep(2000) end,
      nil, "EMSGSIZE" },
    { "garbage", function() return "SSH-2.0-OpenSSH\r\n\r\n" end, nil, "EPROTO" },
  }
  for _, case in ipairs(cases) do
    local name, respond, msg, code = case[1], case[2], case[3], case[4]
    it("fails on " .. name, function()
      run(function()
        local port, stop = raw_server(respond)
        local ws, m, c = websocket.connect("ws://127.0.0.1:" .. port .. "/"):await()
        assert.is_nil(ws)
        if msg then assert.are.equal(msg, m) else assert.matches("^websocket.connect: ", m) end
        assert.are.equal(code, c)
        stop()
      end)
    end)
  end

  it("times out on a server that never answers", function()
    run(function()
      local port, stop = raw_server(function() return nil end)
      local t0 = cf.now()
      local ws, m, c = websocket.connect("ws://127.0.0.1:" .. port .. "/", { timeout = 150 * slow }):await()
      assert.is_nil(ws)
      assert.are.equal(("websocket.connect: no handshake within %d ms"):format(150 * slow), m)
      assert.are.equal("ETIMEDOUT", c)
      assert.is_true(cf.now() - t0 >= 150 * slow)
      stop()
    end)
  end)

  it("takes frames that came in the same segment as the 101", function()
    run(function()
      local port, stop = raw_server(function(a) return ok101(a) .. C.frame(1, "early") .. C.frame(2, "bird") end)
      local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/"):await())
      assert.are.same({ "early", "text" }, { ws:receive():await() })
      assert.are.same({ "bird", "binary" }, { ws:receive():await() })
      ws:stream():close()
      stop()
    end)
  end)

  it("leaks no descriptor over all of the above", function()
    run(function()
      support.full_gc()
      cf.sleep(20):await()
      local before = support.fd_count()
      for _, case in ipairs(cases) do
        local port, stop = raw_server(case[2])
        assert.is_nil((websocket.connect("ws://127.0.0.1:" .. port .. "/"):await()))
        stop()
      end
      local port, stop = raw_server(function() return nil end)
      assert.is_nil((websocket.connect("ws://127.0.0.1:" .. port .. "/", { timeout = 50 }):await()))
      stop()
      for i = 1, 3 do
        local _, _, ws = violate("server", C.frame(1, "unmasked " .. i))
        assert.is_true(ws:is_closed())
      end
      assert.is_true(fd_settled(before))
    end)
  end)
end)

describe("websocket server against a hostile Python client", function()
  local have = S.have_python()
  local py_it = have and it or function(name) pending(name .. " (no python3-websockets)") end

  py_it("closes 1009 on a message over max_message, 1007 on invalid UTF-8", function()
    run(function()
      local failures = cf.channel(4)
      local port, stop = S.server(function(ws)
        while true do
          local data, msg, code = ws:receive():await()
          if not data then failures:send({ msg, code }):await() break end
          ws:send(data, "binary"):await()
        end
      end, { max_message = 1024 * 1024 })
      local p = S.python({ "client", "ws://127.0.0.1:" .. port .. "/", "oversized" })
      assert.are.equal("CLOSED 1009 websocket: message over the limit of 1048576 bytes", S.line(p))
      assert.are.same({ "websocket: message over the limit of 1048576 bytes", "EMSGSIZE" }, failures:recv():await())
      assert.are.equal(0, (p:wait():await()))
      p = S.python({ "client", "ws://127.0.0.1:" .. port .. "/", "bad_utf8" })
      assert.are.equal("CLOSED 1007 websocket: invalid UTF-8 in a text message", S.line(p))
      assert.are.same({ "websocket: invalid UTF-8 in a text message", "EILSEQ" }, failures:recv():await())
      assert.are.equal(0, (p:wait():await()))
      stop()
    end)
  end)
end)

describe("cf._ws decoder fuzz", function()
  it("decodes random valid streams exactly, however sliced, and survives mutations", function()
    local rnd = math.random
    math.randomseed(24)
    local n = math.floor(3000 / slow)
    local ops = { 1, 2, 9, 10 }
    local valid_codes = { [1002] = true, [1007] = true, [1009] = true }
    for iter = 1, n do
      -- a stream of frames a client might send, with fragmented messages
      local parts, want = {}, {}
      for _ = 1, rnd(1, 6) do
        local op = ops[rnd(#ops)]
        local len = rnd(0, 3) == 0 and rnd(0, 70000) or rnd(0, 130)
        if op >= 8 then len = len % 126 end
        local payload = {}
        for i = 1, math.min(len, 64) do payload[i] = string.char(rnd(32, 126)) end
        payload = table.concat(payload):rep(math.ceil(len / 64) + 1):sub(1, len)
        if op <= 2 and rnd(3) == 1 and len > 1 then
          local cut = rnd(1, len - 1)
          parts[#parts + 1] = C.frame(op, payload:sub(1, cut), false, true)
          parts[#parts + 1] = C.frame(0, payload:sub(cut + 1), true, true)
          want[#want + 1] = op .. ":" .. payload:sub(1, cut)
          want[#want + 1] = "0:" .. payload:sub(cut + 1)
        else
          parts[#parts + 1] = C.frame(op, payload, true, true)
          want[#want + 1] = op .. ":" .. payload
        end
      end
      local wire = table.concat(parts)
      local mutate = iter % 2 == 0
      if mutate then -- flip, insert or cut bytes
        local b = { wire:byte(1, math.min(#wire, 4000)) }
        for _ = 1, rnd(1, 4) do
          local i = rnd(#b + 1)
          local kind = rnd(3)
          if kind == 1 and b[i] then b[i] = rnd(0, 255)
          elseif kind == 2 then table.insert(b, i, rnd(0, 255))
          elseif b[i] then table.remove(b, i) end
        end
        local s = {}
        for i = 1, #b do s[i] = string.char(b[i]) end
        wire = table.concat(s) .. wire:sub(4001)
      end
      local d = C.decoder("server", 1 + rnd(0, 1) * 100000)
      local got, pos, failed = {}, 1, nil
      while pos <= #wire and not failed do
        local step = rnd(1, rnd(2) == 1 and 16 or 9000)
        local op, fin, payload = d:next(wire:sub(pos, pos + step - 1))
        pos = pos + step
        while op do
          got[#got + 1] = op .. ":" .. payload
          op, fin, payload = d:next()
        end
        if fin then
          assert(valid_codes[payload], "bad close code " .. tostring(payload))
          assert(type(fin) == "string" and fin:match("^websocket: "))
          failed = fin
          assert.are.equal(fin, select(2, d:next("more")))
        end
      end
      if not mutate and not failed then
        assert.are.equal(#want, #got)
        for i = 1, #want do
          if want[i] ~= got[i] then error(("iteration %d: frame %d differs"):format(iter, i)) end
        end
      end
    end
  end)
end)
