-- Real HTTP peers for the client specs: nginx and Python's http.server run
-- as subprocesses on free ports with configurations of their own in a
-- temporary directory, and raw cfuture TCP servers for hostile peers.
-- Everything here is started inside a task (cf.block_on) and stopped by
-- the returned object's :stop() (also its __close / __gc).
local cf = require "cfuture"
local support = require "support"

local M = {}

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end
M.write = write

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("env -u LD_PRELOAD mkdir -p " .. d .. "/www " .. d .. "/tmp"))
  return d
end

local Proc = {}
Proc.__index = Proc
function Proc:stop()
  if self.stopped then return end
  self.stopped = true
  if not self.p:status() then
    self.p:kill("SIGKILL")
    if cf.current() then self.p:wait():await() end
  end
  if self.dir then os.execute("rm -rf " .. self.dir) end
end
Proc.__close = Proc.stop
Proc.__gc = function(self)
  if not self.stopped and not self.p:status() then self.p:kill("SIGKILL") end
end

-- Wait until host:port accepts connections (the server is up).
local function wait_port(port, proc)
  local deadline = cf.now() + 20000 * support.slow
  while cf.now() < deadline do
    local c = cf.net.connect("127.0.0.1", port):await()
    if c then
      c:close()
      return true
    end
    if proc:status() then error("the server exited before listening") end
    cf.sleep(20):await()
  end
  error("the server did not listen on port " .. port)
end

-- The files nginx serves from its root: hello.txt, big.bin (1 MiB, each
-- byte from its offset), and text.txt (200 KiB of lines, for gzip).
function M.files()
  local big = {}
  for i = 0, 4095 do
    local row = {}
    for j = 0, 255 do row[j + 1] = string.char((i * 7 + j) % 256) end
    big[i + 1] = table.concat(row)
  end
  local lines = {}
  for i = 1, 5000 do lines[i] = ("line %d of the text file for gzip\n"):format(i) end
  return {
    ["hello.txt"] = "hello from nginx\n",
    ["big.bin"] = table.concat(big),
    ["text.txt"] = table.concat(lines),
  }
end

-- nginx on 127.0.0.1 (single process, no daemon), with:
--   /hello.txt /big.bin /text.txt      files (Content-Length)
--   /gzip/*                            the same files under gzip (chunked when compressed)
--   /chunked/*                         the same files as chunked bodies (sub_filter drops the length)
--   /r301 /r302 /r303 /r307 /r308      redirects to /echo-target (status in the name)
--   /abs                               a redirect to an absolute URL (this server)
--   /loop                              a redirect to itself
--   /nocontent                         204
--   /dav/*                             PUT stores the body, GET reads it back
--   /close                             a response with Connection: close
-- Every response has X-Connection ($connection, nginx's connection serial
-- number) and X-Requests ($connection_requests). opts.tls = certificate
-- and key paths: a second listener with TLS (tls_port).
function M.nginx(opts)
  opts = opts or {}
  local dir = tmpdir()
  for name, data in pairs(M.files()) do write(dir .. "/www/" .. name, data) end
  assert(os.execute("mkdir -p " .. dir .. "/www/gzip " .. dir .. "/www/chunked " .. dir .. "/www/dav"))
  for name, data in pairs(M.files()) do
    write(dir .. "/www/gzip/" .. name, data)
    write(dir .. "/www/chunked/" .. name, data)
  end
  local port = support.unused_port()
  local tls_port = opts.tls and support.unused_port()
  local tls = ""
  if opts.tls then
    tls = ("listen 127.0.0.1:%d ssl;\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n")
      :format(tls_port, opts.tls.cert, opts.tls.key)
  end
  local conf = ([[
daemon off;
master_process off;
worker_processes 1;
error_log DIR/error.log warn;
pid DIR/nginx.pid;
events { worker_connections 1024; }
http {
  log_format conn '$connection $connection_requests "$request" $status';
  access_log DIR/access.log conn;
  client_body_temp_path DIR/tmp/body;
  proxy_temp_path DIR/tmp/proxy;
  fastcgi_temp_path DIR/tmp/fastcgi;
  uwsgi_temp_path DIR/tmp/uwsgi;
  scgi_temp_path DIR/tmp/scgi;
  keepalive_requests 100000;
  keepalive_timeout 60s;
  default_type text/plain;
  types { text/plain txt; application/octet-stream bin; }
  server {
    listen 127.0.0.1:PORT;
    TLS
    root DIR/www;
    absolute_redirect off;
    add_header X-Connection $connection always;
    add_header X-Requests $connection_requests always;
    client_max_body_size 100m;
    location /gzip/ { gzip on; gzip_types text/plain application/octet-stream; gzip_min_length 1; }
    location /chunked/ { sub_filter_types *; sub_filter 'zzzz' 'zzzz'; sub_filter_once off; }
    location = /r301 { return 301 /echo-target; }
    location = /r302 { return 302 /echo-target; }
    location = /r303 { return 303 /echo-target; }
    location = /r307 { return 307 /echo-target; }
    location = /r308 { return 308 /echo-target; }
    location = /abs { return 302 http://127.0.0.1:PORT/hello.txt; }
    location = /loop { return 302 /loop; }
    location = /echo-target { return 200 "$request_method $uri\n"; }
    location = /nocontent { return 204; }
    location = /close { keepalive_timeout 0; return 200 "closing\n"; }
    location /dav/ { dav_methods PUT DELETE; create_full_put_path on; }
  }
}
]]):gsub("TLS", (tls:gsub("%%", "%%%%"))):gsub("DIR", dir):gsub("PORT", tostring(port))
  write(dir .. "/nginx.conf", conf)
  local p = assert(cf.process.spawn({ "nginx", "-p", dir, "-c", dir .. "/nginx.conf", "-e", dir .. "/error.log",
    stdout = "null", stderr = "null", env = { LD_PRELOAD = false } }))
  local self = setmetatable({ p = p, dir = dir, port = port, tls_port = tls_port }, Proc)
  wait_port(port, p)
  -- the probe connection shows in nginx's counter: base is the next one
  return self
end

-- The access log: a list of { connection = n, requests = n, request = "...", status = n }.
function M.access_log(server)
  local f = io.open(server.dir .. "/access.log")
  if not f then return {} end
  local out = {}
  for line in f:lines() do
    local c, r, req, st = line:match('^(%d+) (%d+) "(.-)" (%d+)$')
    if c then out[#out + 1] = { connection = tonumber(c), requests = tonumber(r), request = req, status = tonumber(st) } end
  end
  f:close()
  return out
end

-- Python's http.server with a handler that echoes the request as JSON
-- (method, path, headers, body; chunked request bodies decoded), speaking
-- HTTP/1.1 with keep-alive; /status/N answers N; /redirect?to=URL&code=N;
-- /slow-head?ms=N waits before answering; /http10 answers as HTTP/1.0
-- with a close-delimited body.
function M.python()
  local prog = [=[
import http.server, json, sys, time, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""): pass
                    return out, True
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n), False
    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/http10":
            self.protocol_version = "HTTP/1.0"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"close-delimited body\n")
            self.close_connection = True
            return
        if u.path.startswith("/slow-head"):
            time.sleep(int(q.get("ms", ["100"])[0]) / 1000)
        if u.path == "/redirect":
            self.body()
            self.send_response(int(q.get("code", ["302"])[0]))
            self.send_header("Location", q["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if u.path.startswith("/expect"):
            # answer before the body (417 / 401 without reading it)
            if self.headers.get("Expect", "").lower() == "100-continue" and u.path == "/expect-refuse":
                self.send_response(417)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                return
        data, chunked = self.body()
        status = 200
        if u.path.startswith("/status/"):
            status = int(u.path[8:])
        out = json.dumps({"method": self.command, "path": self.path, "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()], "body": data.decode("latin-1"),
            "chunked": chunked}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if self.command == "HEAD" or status in (204, 304):
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any
    def handle_expect_100(self):
        if self.path == "/expect-refuse":
            return True
        return super().handle_expect_100()
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print("PORT", s.server_address[1], flush=True)
s.serve_forever()
]=]
  local p = assert(cf.process.spawn({ "/usr/bin/python3", "-c", prog, stdout = "pipe", stderr = "null",
    env = { LD_PRELOAD = false } }))
  local self = setmetatable({ p = p }, Proc)
  local line = cf.timeout(20000 * support.slow, p.stdout:read_line()):await()
  self.port = tonumber(tostring(line):match("PORT (%d+)"))
  assert(self.port, "python did not start: " .. tostring(line))
  return self
end

-- A raw TCP server: handler(conn, n) runs in a task for the n-th
-- connection. Returns { port, count = connections so far, stop = fn }.
function M.raw(handler)
  local l = assert(cf.net.listen("127.0.0.1", 0))
  local _, port = l:local_address()
  local self = { port = port, count = 0, conns = {} }
  self.task = cf.spawn(function()
    for conn in l:incoming() do
      self.count = self.count + 1
      self.conns[#self.conns + 1] = conn
      local n = self.count
      cf.spawn(function()
        local ok, err = pcall(handler, conn, n)
        if not ok and not tostring(err):match("closed") then io.stderr:write("raw server: ", tostring(err), "\n") end
        if not conn:is_closed() then conn:close() end
      end)
    end
  end)
  function self.stop()
    l:close()
    for _, c in ipairs(self.conns) do
      if not c:is_closed() then c:close() end
    end
  end
  return self
end

-- Read a request head from a raw connection: the lines up to the blank one.
function M.read_head(conn)
  local lines = {}
  while true do
    local line = conn:read_line():await()
    if not line then return nil end
    if line == "" then return lines end
    lines[#lines + 1] = line
  end
end

return M
