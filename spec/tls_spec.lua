-- cf.tls against real peers on 127.0.0.1: openssl s_server / s_client,
-- curl and Python's ssl module, and cfuture itself. Certificates are made
-- at test time (spec/tls_certs.lua).
local cf = require "cfuture"
local support = require "support"
local certs = require "tls_certs"
local tls = cf.tls

local P = certs.path
local slow = support.slow

local function run(fn, ms)
  return cf.block_on(function()
    local r = { cf.timeout((ms or 20000) * slow, cf.async(fn)()):await() }
    if r[1] == nil and r[2] == "timeout" and r.n == nil and #r == 2 then error("the test timed out", 0) end
    return unpack(r)
  end)
end
unpack = unpack or table.unpack

-- A cfuture TLS server on a free port: handler(conn) runs in a task per
-- connection. Returns the listener and its port.
local function serve(opts, handler)
  local l = assert(tls.listen("127.0.0.1", 0, opts))
  local _, port = l:local_address()
  cf.spawn(function()
    for conn in l:incoming() do cf.spawn(handler, conn) end
  end)
  return l, port
end

-- Echo lines upper-cased until the end or an error (a refused client's
-- handshake failure ends the loop as a read error).
local function upper_echo(conn)
  while true do
    local line = conn:read_line():await()
    if not line or not conn:write(line:upper() .. "\n"):await() then break end
  end
  if not conn:is_closed() then conn:shutdown() end
end

local function server_opts(extra)
  local o = { certfile = P("server.pem"), keyfile = P("server.key") }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Children do not inherit the sanitizer the suite may run under.
local CHILD_ENV = { LD_PRELOAD = false }

-- A child process whose stdout's first matching line gives a port.
local function spawn_with_port(spec, pattern)
  spec.env = CHILD_ENV
  spec.stdout = "pipe"
  spec.stdin = spec.stdin or "pipe"
  spec.stderr = spec.stderr or "null"
  local p = assert(cf.process.spawn(spec))
  while true do
    local line = p.stdout:read_line():await()
    assert(line, "the child ended before it printed its port")
    local port = line:match(pattern)
    if port then return p, tonumber(port) end
  end
end

local function python(code, args)
  local spec = { "python3", "-c", code }
  for _, a in ipairs(args or {}) do spec[#spec + 1] = a end
  return spec
end

describe("cf.tls", function()
  setup(function() certs.dir() end)
  teardown(function() certs.cleanup() end)

  describe("against cfuture", function()
    it("connects, verifies the server and echoes both ways", function()
      run(function()
        local l, port = serve(server_opts(), upper_echo)
        local s = assert(tls.connect("localhost", port, { cafile = P("ca.pem") }):await())
        assert.is_truthy(tostring(s):find("^cfuture%.Stream%(open, tls%)"))
        local info = s:tls_info()
        assert.are.equal("TLSv1.3", info.protocol)
        assert.is_true(info.verified)
        assert.is_false(info.resumed)
        assert.are.equal("client", info.role)
        assert.are.equal("localhost", info.servername)
        local cert = s:peer_certificate()
        assert.are.equal("CN=localhost", cert.subject)
        assert.are.equal("CN=cfuture test CA", cert.issuer)
        assert.are.same({ "DNS:localhost", "IP:127.0.0.1" }, cert.san)
        assert.are.equal(64, #cert.fingerprint)
        assert.is_true(cert.not_after > os.time() and cert.not_before <= os.time() + 60)
        assert.is_truthy(cert.pem:find("^%-%-%-%-%-BEGIN CERTIFICATE"))
        assert.is_true(s:write("hello\nworld\n"):await())
        assert.are.equal("HELLO", s:read_line():await())
        assert.are.equal("WORLD", s:read_line():await())
        assert.is_true(s:shutdown())
        assert.is_nil(s:read_line():await()) -- the server's close_notify: a clean end
        s:close()
        l:close()
      end)
    end)

    it("completes the handshake for a server whose first act is a write (a banner)", function()
      run(function()
        local l, port = serve(server_opts(), function(conn)
          -- SMTPS, IMAPS: the server speaks first; the write waits for the handshake
          assert(conn:write("220 ready\n"):await())
          assert(conn:write("221 bye\n"):await())
          conn:shutdown()
        end)
        local s = assert(tls.connect("localhost", port, { cafile = P("ca.pem") }):await())
        assert.are.equal("220 ready", s:read_line():await())
        assert.are.equal("221 bye", s:read_line():await())
        assert.is_nil(s:read_line():await())
        s:close()
        -- the client writes before its handshake is awaited too: wrap without awaiting
        local c = assert(cf.net.connect("127.0.0.1", port):await())
        local hs = tls.wrap(c, { cafile = P("ca.pem"), servername = "localhost" })
        local first = cf.spawn(function() return c:read_line():await() end)
        assert.are.equal(c, hs:await())
        assert.are.equal("220 ready", first:await())
        c:close()
        l:close()
      end)
    end)

    it("fails a banner write at once when the client resets before its handshake", function()
      run(function()
        local done = cf.notify()
        local got
        local l, port = serve(server_opts(), function(conn)
          got = { conn:write("220 ready\n"):await() }
          done:notify_one()
          conn:close()
        end)
        local c = assert(cf.net.connect("127.0.0.1", port):await())
        cf.sleep(20):await()
        c:reset()
        local t0 = cf.now()
        if not got then
          local _, why = cf.timeout(2000, done:wait()):await()
          assert.is_nil(why) -- not "timeout": the write did not hang
        end
        assert.is_true(cf.now() - t0 < 2000)
        assert.is_nil(got[1])
        assert.is_truthy(got[3] == "ECONNRESET" or got[3] == "ETLSEOF", tostring(got[3]))
        -- and the server goes on
        local s = assert(tls.connect("localhost", port, { cafile = P("ca.pem") }):await())
        assert.are.equal("220 ready", s:read_line():await())
        s:close()
        l:close()
      end)
    end)

    it("shares one context between calls with the same options, so sessions resume", function()
      run(function()
        local l, port = serve(server_opts(), upper_echo)
        local resumed = {}
        for i = 1, 3 do
          local s = assert(tls.connect("localhost", port, { cafile = P("ca.pem") }):await())
          s:write("r\n"):await()
          assert.are.equal("R", s:read_line():await())
          resumed[i] = s:tls_info().resumed
          s:close()
        end
        assert.are.same({ false, true, true }, resumed)
        l:close()
      end)
    end)

    it("checks an IP address against the certificate's IP entries", function()
      run(function()
        local l, port = serve(server_opts(), upper_echo)
        local s = assert(tls.connect("127.0.0.1", port, { cafile = P("ca.pem") }):await())
        assert.is_nil(s:tls_info().servername) -- no SNI for an address
        assert.is_true(s:write("ip\n"):await())
        assert.are.equal("IP", s:read_line():await())
        s:close()
        l:close()
      end)
    end)

    it("refuses an untrusted CA, a wrong name and an expired certificate, each with its own code", function()
      run(function()
        local function try(certfile, keyfile, opts)
          local l, port = serve({ certfile = P(certfile), keyfile = P(keyfile) }, upper_echo)
          opts = opts or {}
          opts.cafile = P("ca.pem")
          local s, msg, code = tls.connect("localhost", port, opts):await()
          l:close()
          return s, msg, code
        end
        local s, msg, code = try("rogue.pem", "rogue.key")
        assert.is_nil(s)
        assert.are.equal("ECERTUNTRUSTED", code)
        assert.are.equal("tls.connect: certificate verify failed: unable to get local issuer certificate", msg)
        s, msg, code = try("other.pem", "other.key")
        assert.is_nil(s)
        assert.are.equal("EHOSTMISMATCH", code)
        assert.is_truthy(msg:find("hostname mismatch", 1, true), msg)
        s, msg, code = try("expired.pem", "expired.key")
        assert.is_nil(s)
        assert.are.equal("ECERTEXPIRED", code)
        assert.is_truthy(msg:find("certificate has expired", 1, true), msg)
        -- the system store does not know the test CA either
        local l, port = serve(server_opts(), upper_echo)
        s, msg, code = tls.connect("localhost", port):await()
        assert.are.equal("ECERTUNTRUSTED", code)
        -- verify = false connects, and says it did not verify
        s = assert(tls.connect("localhost", port, { verify = false }):await())
        assert.is_false(s:tls_info().verified)
        assert.is_true(s:write("x\n"):await())
        assert.are.equal("X", s:read_line():await())
        s:close()
        -- servername overrides the name checked
        s, msg, code = tls.connect("127.0.0.1", port, { cafile = P("ca.pem"), servername = "other.example" }):await()
        assert.are.equal("EHOSTMISMATCH", code)
        l:close()
      end)
    end)

    it("does mutual TLS: the server requires and inspects a client certificate", function()
      run(function()
        local seen = {}
        local l, port = serve(server_opts({ cafile = P("ca.pem"), client_cert = "require" }), function(conn)
          local ok, msg, code = conn:handshake():await()
          seen[#seen + 1] = { ok = ok, code = code, msg = msg }
          if ok then
            local c = conn:peer_certificate()
            seen[#seen].subject = c and c.subject
            seen[#seen].verified = conn:tls_info().verified
            upper_echo(conn)
          end
          conn:close()
        end)
        -- with a certificate the CA issued
        local s = assert(tls.connect("localhost", port, { cafile = P("ca.pem"), certfile = P("client.pem"),
          keyfile = P("client.key") }):await())
        assert.is_true(s:write("mtls\n"):await())
        assert.are.equal("MTLS", s:read_line():await())
        s:close()
        assert.are.equal("CN=cfuture client", seen[1].subject)
        assert.is_true(seen[1].verified)
        -- without one: the server refuses (TLS 1.3 clients learn it on their first read)
        s = tls.connect("localhost", port, { cafile = P("ca.pem") }):await()
        if s then
          local line, msg, code = s:read_line():await()
          assert.is_nil(line)
          assert.are.equal("ETLS", code)
          assert.is_truthy(msg:find("certificate required", 1, true), msg)
          s:close()
        end
        cf.sleep(50):await()
        assert.are.equal("ECERTREQUIRED", seen[2].code)
        -- with one from a CA the server does not trust
        s = tls.connect("localhost", port, { cafile = P("ca.pem"), certfile = P("rogue_client.pem"),
          keyfile = P("rogue_client.key") }):await()
        if s then
          local line, _, code = s:read_line():await()
          assert.is_nil(line)
          assert.are.equal("ETLS", code)
          s:close()
        end
        cf.sleep(50):await()
        assert.are.equal("ECERTUNTRUSTED", seen[3].code)
        l:close()
      end)
    end)

    it("lets a server ask for a client certificate without requiring one", function()
      run(function()
        local subjects = {}
        local l, port = serve(server_opts({ cafile = P("ca.pem"), client_cert = "request" }), function(conn)
          assert(conn:handshake():await())
          local c = conn:peer_certificate()
          subjects[#subjects + 1] = c and c.subject or "none"
          upper_echo(conn)
        end)
        for _, o in ipairs({ {}, { certfile = P("client.pem"), keyfile = P("client.key") } }) do
          o.cafile = P("ca.pem")
          local s = assert(tls.connect("localhost", port, o):await())
          assert.is_true(s:write("a\n"):await())
          assert.are.equal("A", s:read_line():await())
          s:close()
        end
        assert.are.same({ "none", "CN=cfuture client" }, subjects)
        l:close()
      end)
    end)

    it("upgrades a plain connection mid-stream (STARTTLS) on both sides", function()
      run(function()
        local got = {}
        local l = assert(cf.net.listen("127.0.0.1", 0))
        local _, port = l:local_address()
        cf.spawn(function()
          local conn = l:accept():await()
          assert.are.equal("EHLO client", conn:read_line():await())
          conn:write("250 STARTTLS\n"):await()
          assert.are.equal("STARTTLS", conn:read_line():await())
          conn:write("220 go ahead\n"):await()
          local s = assert(tls.accept(conn, server_opts()):await())
          assert.are.equal(conn, s) -- the same stream object, now TLS
          got.server_line = s:read_line():await()
          s:write("secret reply\n"):await()
          s:shutdown()
        end)
        local c = assert(cf.net.connect("127.0.0.1", port):await())
        -- the client pipelines STARTTLS: its ClientHello may arrive with the command
        c:write("EHLO client\n"):await()
        assert.are.equal("250 STARTTLS", c:read_line():await())
        c:write("STARTTLS\n"):await()
        assert.are.equal("220 go ahead", c:read_line():await())
        assert.is_nil(c:tls_info())
        local s = assert(tls.wrap(c, { cafile = P("ca.pem"), servername = "localhost" }):await())
        assert.are.equal(c, s)
        assert.are.equal("TLSv1.3", s:tls_info().protocol)
        s:write("secret line\n"):await()
        assert.are.equal("secret reply", s:read_line():await())
        assert.is_nil(s:read_line():await())
        assert.are.equal("secret line", got.server_line)
        s:close()
        l:close()
      end)
    end)

    it("hands bytes read ahead before the upgrade to OpenSSL (the server side of STARTTLS)", function()
      run(function()
        local l = assert(cf.net.listen("127.0.0.1", 0))
        local _, port = l:local_address()
        local done = cf.spawn(function()
          local conn = l:accept():await()
          -- the client sends STARTTLS and its ClientHello at once: read the
          -- command; the hello is in the buffer already
          assert.are.equal("STARTTLS", conn:read_line():await())
          cf.sleep(50):await()
          assert.is_true(conn:buffered() > 0)
          local s = assert(tls.accept(conn, server_opts()):await())
          return s:read_line():await()
        end)
        local c = assert(cf.net.connect("127.0.0.1", port):await())
        c:write("STARTTLS\n"):await()
        local s = assert(tls.wrap(c, { cafile = P("ca.pem"), servername = "localhost" }):await())
        s:write("after\n"):await()
        assert.are.equal("after", done:await())
        s:close()
        l:close()
      end)
    end)

    it("moves 32 MiB byte-exact both ways through a TLS echo", function()
      run(function()
        local l, port = serve(server_opts(), function(conn)
          for data in conn:chunks() do
            if not conn:write(data):await() then break end
          end
          conn:shutdown()
        end)
        local s = assert(tls.connect("localhost", port, { cafile = P("ca.pem") }):await())
        local piece = {}
        for i = 0, 255 do piece[#piece + 1] = string.char(i) end
        piece = table.concat(piece)
        local mib = piece:rep(4096)
        local total = 32
        local writer = cf.spawn(function()
          for i = 1, total do
            assert(s:write(string.char(i) .. mib:sub(2)):await())
          end
          s:shutdown()
        end)
        local got, n, block = {}, 0, 1
        local pending = ""
        for data in s:chunks() do
          pending = pending .. data
          while #pending >= #mib do
            local want = string.char(block) .. mib:sub(2)
            if pending:sub(1, #mib) ~= want then error("block " .. block .. " differs") end
            pending = pending:sub(#mib + 1)
            block = block + 1
          end
          n = n + #data
        end
        writer:await()
        assert.are.equal(total * #mib, n)
        assert.are.equal(total + 1, block)
        assert.are.equal("", pending)
        s:close()
        l:close()
        local _ = got
      end, 60000)
    end)

    it("serves 500 concurrent TLS connections (150 under valgrind)", function()
      run(function()
        -- every handshake of both sides runs in this one thread: under
        -- valgrind (some 25x slower) the last of 500 would wait past the
        -- default 30 s handshake limit, so fewer there, with a wider limit
        local limit = 30000 * support.slow
        local l, port = serve(server_opts(), upper_echo)
        local ctx = assert(tls.context({ cafile = P("ca.pem") }))
        local n, fds = support.slow > 1 and 150 or 500, support.fd_count()
        local tasks = {}
        for i = 1, n do
          tasks[i] = cf.spawn(function()
            local s = assert(tls.connect("localhost", port, { context = ctx, handshake_timeout = limit }):await())
            assert(s:write("conn " .. i .. "\n"):await())
            local line = s:read_line():await()
            s:close()
            return line
          end)
        end
        local results = cf.join_all(tasks):await()
        for i = 1, n do assert.are.equal("CONN " .. i, results[i]) end
        l:close()
        cf.sleep(100):await()
        support.full_gc()
        cf.sleep(50):await()
        assert.is_true(support.fd_count() <= fds + 2, "fds left open")
      end, 120000)
    end)

    it("negotiates ALPN: the server's first choice the client offers, or none", function()
      run(function()
        local l, port = serve(server_opts({ alpn = { "http/1.1", "h2" } }), upper_echo)
        local function alpn(list)
          local s = assert(tls.connect("localhost", port, { cafile = P("ca.pem"), alpn = list }):await())
          local a = s:tls_info().alpn
          s:close()
          return a
        end
        assert.are.equal("http/1.1", alpn({ "h2", "http/1.1" }))
        assert.are.equal("h2", alpn({ "h2" }))
        assert.is_nil(alpn({ "imap" }))
        assert.is_nil(alpn(nil))
        l:close()
      end)
    end)

    it("resumes sessions through a shared client context", function()
      run(function()
        local l, port = serve(server_opts(), upper_echo)
        local ctx = assert(tls.context({ cafile = P("ca.pem") }))
        local resumed = {}
        for i = 1, 3 do
          local s = assert(tls.connect("localhost", port, { context = ctx }):await())
          -- a round trip: TLS 1.3 tickets come after the handshake
          s:write("r\n"):await()
          assert.are.equal("R", s:read_line():await())
          resumed[i] = s:tls_info().resumed
          s:close()
        end
        assert.are.same({ false, true, true }, resumed)
        local off = assert(tls.context({ cafile = P("ca.pem"), session_cache = false }))
        for i = 1, 2 do
          local s = assert(tls.connect("localhost", port, { context = off }):await())
          s:write("r\n"):await()
          s:read_line():await()
          resumed[i] = s:tls_info().resumed
          s:close()
        end
        assert.is_false(resumed[2])
        l:close()
      end)
    end)

    it("keeps to min_version and max_version", function()
      run(function()
        local l, port = serve(server_opts({ max_version = "1.2" }), upper_echo)
        local s = assert(tls.connect("localhost", port, { cafile = P("ca.pem") }):await())
        assert.are.equal("TLSv1.2", s:tls_info().protocol)
        s:write("v\n"):await()
        assert.are.equal("V", s:read_line():await())
        s:close()
        local s2, msg, code = tls.connect("localhost", port, { cafile = P("ca.pem"), min_version = "1.3" }):await()
        assert.is_nil(s2)
        assert.are.equal("ETLS", code)
        assert.is_truthy(msg:find("protocol version", 1, true) or msg:find("alert", 1, true), msg)
        l:close()
      end)
    end)
  end)

  describe("against OpenSSL's and Python's peers", function()
    it("talks to openssl s_server as a client", function()
      run(function()
        local p, port = spawn_with_port({ "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", P("server.pem"),
          "-key", P("server.key"), "-naccept", "1", "-alpn", "myproto" }, "^ACCEPT [^:]*:(%d+)")
        local s = assert(tls.connect("localhost", port, { cafile = P("ca.pem"), alpn = { "myproto" } }):await())
        assert.are.equal("myproto", s:tls_info().alpn)
        s:write("from cfuture\n"):await()
        -- s_server copies what it receives to its stdout (among its own
        -- reports), and its stdin to the peer
        local line
        repeat line = p.stdout:read_line():await() until line == nil or line == "from cfuture"
        assert.are.equal("from cfuture", line)
        p.stdin:write("from s_server\n"):await()
        assert.are.equal("from s_server", s:read_line():await())
        s:close()
        p:kill()
        p:wait():await()
      end)
    end)

    it("talks to a Python ssl server as a client", function()
      local code = [[
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(1)
print("PORT", ls.getsockname()[1], flush=True)
c, _ = ls.accept()
s = ctx.wrap_socket(c, server_side=True)
f = s.makefile("rwb")
for line in f:
    f.write(line[::-1].strip() + b"\n"); f.flush()
s.unwrap(); s.close()
]]
      run(function()
        local p, port = spawn_with_port(python(code, { P("server.pem"), P("server.key") }), "PORT (%d+)")
        local s = assert(tls.connect("127.0.0.1", port, { cafile = P("ca.pem") }):await())
        s:write("abc\n"):await()
        assert.are.equal("cba", s:read_line():await())
        s:write("python\n"):await()
        assert.are.equal("nohtyp", s:read_line():await())
        s:shutdown()
        assert.is_nil(s:read_line():await()) -- Python's unwrap sent close_notify
        s:close()
        assert.are.equal(0, p:wait():await())
      end)
    end)

    it("serves curl --cacert", function()
      run(function()
        local l, port = serve(server_opts({ alpn = { "http/1.1" } }), function(conn)
          local req = conn:read_line():await()
          if not req then return end -- the curl that refused the server
          repeat local h = conn:read_line():await() until h == "" or h == nil
          local body = "you asked for " .. req:match("^GET (%S+)")
          conn:write(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"):format(#body, body)):await()
          conn:shutdown()
        end)
        local code, out, err = cf.process.run("curl", { "-sS", "--cacert", P("ca.pem"),
          ("https://localhost:%d/hello"):format(port) }, { env = CHILD_ENV }):await()
        assert.are.equal(0, code, err)
        assert.are.equal("you asked for /hello", out)
        -- and curl refuses the server without the CA
        code, out, err = cf.process.run("curl", { "-sS", ("https://localhost:%d/x"):format(port) },
          { env = CHILD_ENV }):await()
        assert.are.equal(60, code) -- CURLE_PEER_FAILED_VERIFICATION
        l:close()
      end)
    end)

    it("serves openssl s_client, verifying the chain and the name", function()
      run(function()
        local l, port = serve(server_opts(), upper_echo)
        local p = assert(cf.process.spawn({ "openssl", "s_client", "-connect", "127.0.0.1:" .. port,
          "-servername", "localhost", "-verify_hostname", "localhost", "-CAfile", P("ca.pem"),
          "-verify_return_error", "-quiet", stdin = "pipe", stdout = "pipe", stderr = "null", env = CHILD_ENV }))
        p.stdin:write("s client\n"):await()
        assert.are.equal("S CLIENT", p.stdout:read_line():await())
        p:kill()
        p:wait():await()
        -- against the rogue server it gives up
        local l2, port2 = serve({ certfile = P("rogue.pem"), keyfile = P("rogue.key") }, upper_echo)
        local code = cf.process.run("openssl", { "s_client", "-connect", "127.0.0.1:" .. port2,
          "-CAfile", P("ca.pem"), "-verify_return_error", "-quiet" }, { env = CHILD_ENV }):await()
        assert.are_not.equal(0, code)
        l2:close()
        l:close()
      end)
    end)

    it("serves a Python ssl client, with the SNI it sent", function()
      local code = [[
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"py\n")
        print(s.recv(100).decode().strip(), s.version())
]]
      run(function()
        local names = {}
        local l, port = serve(server_opts(), function(conn)
          conn:handshake():await()
          names[#names + 1] = conn:tls_info().servername
          upper_echo(conn)
        end)
        local rc, out, err = cf.process.run("python3", { "-c", code, P("ca.pem"), port }, { env = CHILD_ENV }):await()
        assert.are.equal(0, rc, err)
        assert.are.equal("PY TLSv1.3\n", out)
        assert.are.same({ "localhost" }, names)
        l:close()
      end)
    end)
  end)

  describe("misuse", function()
    it("raises on bad options, naming the function and the option", function()
      run(function()
        assert.has_error(function() tls.connect("localhost", 1, { verfy = false }) end,
          "tls.connect: unknown option verfy")
        assert.has_error(function() tls.connect("localhost", 1, { verify = "no" }) end,
          "tls.connect: option verify must be a boolean (got string)")
        assert.has_error(function() tls.connect("localhost", 1, { alpn = "h2" }) end,
          "tls.connect: option alpn must be a list of protocol names (got string)")
        assert.has_error(function() tls.connect("localhost", 1, { min_version = "1.1" }) end,
          "tls.connect: option min_version must be \"1.2\" or \"1.3\" (got \"1.1\")")
        assert.has_error(function() tls.connect("localhost", 1, { handshake_timeout = -1 }) end,
          "tls.connect: option handshake_timeout must be a positive number of milliseconds or false (got -1)")
        assert.has_error(function() tls.connect("localhost", 1, 5) end,
          "tls.connect: argument #3 must be an options table (got number)")
        assert.has_error(function() tls.listen("127.0.0.1", 0, {}) end,
          "tls.listen: a server needs option certfile (and keyfile, unless certfile holds the key)")
        assert.has_error(function() tls.listen("127.0.0.1", 0) end,
          "tls.listen: argument #3 must be an options table (got nil)")
        assert.has_error(function() tls.wrap("x") end, "tls.wrap: argument #1 must be a stream (got string)")
        local client = assert(tls.context({}))
        assert.has_error(function() tls.listen("127.0.0.1", 0, { context = client }) end,
          "tls.listen: option context must be a server context")
        assert.has_error(function() tls.connect("localhost", 1, { context = client, cafile = "x" }) end,
          "tls.connect: option cafile belongs to the context; give it to tls.context instead")
        assert.has_error(function() tls.listen("127.0.0.1", 0, server_opts({ verify = true })) end,
          "tls.listen: option verify is for clients (a server verifies clients with client_cert)")
        assert.has_error(function() tls.context({ ciphers = "NOPE" }) end,
          "tls.context: option ciphers matches no cipher (\"NOPE\")")
        assert.is_truthy(tostring(client):find("^cfuture%.TlsContext%(client%)"))
      end)
    end)

    it("returns nil, msg, code for files it cannot load", function()
      run(function()
        local c, msg, code = tls.context({ cafile = "/nonexistent/ca.pem" })
        assert.is_nil(c)
        assert.are.equal("ENOENT", code)
        assert.are.equal("tls.context: cafile /nonexistent/ca.pem: no such file or directory", msg)
        c, msg, code = tls.context({ server = true, certfile = P("server.pem"), keyfile = P("other.key") })
        assert.is_nil(c)
        assert.are.equal("ETLS", code)
        assert.is_truthy(msg:find("^tls%.context: keyfile .*other%.key: key values mismatch$"), msg)
        local s
        s, msg, code = tls.connect("localhost", 1, { cafile = "/nonexistent" }):await()
        assert.is_nil(s)
        assert.are.equal("ENOENT", code)
        local l
        l, msg, code = tls.listen("127.0.0.1", 0, { certfile = P("ca.key") })
        assert.is_nil(l)
        assert.are.equal("ETLS", code)
      end)
    end)

    it("needs a servername to verify a wrapped stream, and wraps a stream once", function()
      run(function()
        local l, port = serve(server_opts(), upper_echo)
        local c = assert(cf.net.connect("127.0.0.1", port):await())
        assert.has_error(function() tls.wrap(c, { cafile = P("ca.pem") }) end,
          "tls.wrap: option servername is required to verify the peer (or verify = false)")
        local s = assert(tls.wrap(c, { cafile = P("ca.pem"), servername = "localhost" }):await())
        assert.has_error(function() tls.wrap(s, { verify = false }) end, "tls.wrap: the stream is a TLS stream already")
        assert.has_error(function() tls.accept(s, server_opts()) end, "tls.accept: the stream is a TLS stream already")
        -- the misuse left the stream working
        assert.is_true(s:write("still\n"):await())
        assert.are.equal("STILL", s:read_line():await())
        s:close()
        l:close()
      end)
    end)

    it("reports a refused connection as tls.connect's", function()
      run(function()
        local l = assert(cf.net.listen("127.0.0.1", 0))
        local _, port = l:local_address()
        l:close()
        local s, msg, code = tls.connect("127.0.0.1", port):await()
        assert.is_nil(s)
        assert.are.equal("ECONNREFUSED", code)
        assert.is_truthy(msg:find("^tls%.connect"), msg)
      end)
    end)
  end)

  it("an empty write is a flush on a TLS stream too", function()
    run(function()
      local go = cf.notify()
      local got
      local l, port = serve(server_opts(), function(conn)
        assert(conn:handshake():await())
        go:wait():await() -- reads nothing until told
        got = #conn:read_all():await()
        conn:close()
      end)
      local c = assert(tls.connect("127.0.0.1", port, { cafile = P("ca.pem") }):await())
      assert.is_true(c:write(""):await()) -- nothing queued: at once
      local data = string.rep("t", 16 * 1024 * 1024)
      assert.are.same({ nil, "timeout" }, { cf.timeout(20, c:write(data)):await() })
      local flush = cf.spawn(function() return c:write(""):await() end)
      cf.sleep(50):await()
      assert.is_false(flush:is_finished())
      go:notify_one()
      assert.is_true(flush:await())
      c:shutdown()
      while got == nil do cf.sleep(5):await() end
      assert.are.equal(#data, got)
      c:close()
      l:close()
    end)
  end)
end)
