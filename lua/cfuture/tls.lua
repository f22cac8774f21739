-- cf.tls: TLS streams (client, server, STARTTLS) on OpenSSL. The engine is
-- C (src/uv/tls.c: a TLS stream is a cfuture.Stream whose bytes pass
-- through OpenSSL); this file builds the public functions on its helpers.
--
-- Options are checked by name here (a misspelt `verfy = false` must not
-- pass silently) and by value in C. Every function that makes a connection
-- returns a future; a handshake that fails, times out or is cancelled
-- closes the stream it was making, so no descriptor is left behind.
return function(cf)
  local internal = cf._tls -- C helpers for this file only
  if not internal then return end -- loaded again: cf has what the first load added
  cf._tls = nil
  local tls = cf.tls
  local new_context, attach, set_listener, role, check_stream = internal.context, internal.attach,
    internal.listen, internal.is_server, internal.check_stream
  local async, defer, timeout = cf.async, cf.defer, cf.timeout
  local net_connect, net_listen = cf.net.connect, cf.net.listen
  local type, pairs, ipairs, error, tostring, pcall, now = type, pairs, ipairs, error, tostring, pcall,
    cf.now

  local DEFAULT_TIMEOUT = 30000 -- ms for a handshake, unless handshake_timeout says otherwise

  -- What belongs to a context (SSL_CTX) and what to one connection.
  local CONTEXT = {
    cafile = true, capath = true, certfile = true, keyfile = true, verify = true,
    client_cert = true, alpn = true, min_version = true, max_version = true, ciphers = true,
    ciphersuites = true, session_cache = true,
  }
  local CALL = { context = true, servername = true, handshake_timeout = true }
  local LISTEN = { context = true, backlog = true, ipv6only = true }

  local function check_open(fname)
    if not pcall(now) then error(fname .. ": the cfuture runtime is closed", 3) end
  end

  -- opts (may be nil) with every key known: context keys and those in `extra`.
  local function check_opts(opts, fname, argn, extra)
    if opts == nil then return {} end
    if type(opts) ~= "table" then
      error(("%s: argument #%d must be an options table (got %s)"):format(fname, argn, type(opts)), 3)
    end
    for k in pairs(opts) do
      if not CONTEXT[k] and not (extra and extra[k]) then
        error(("%s: unknown option %s"):format(fname, tostring(k)), 3)
      end
    end
    return opts
  end

  -- Contexts made from options, by the options' canonical text: calls with
  -- the same options share one (the CA store is loaded once, and client
  -- sessions are resumed). A few dozen distinct option sets at most are
  -- kept; past that the oldest is let go.
  local made, made_order, MADE_MAX = {}, {}, 32
  local function canonical(copy)
    local keys = {}
    for k in pairs(copy) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local v = copy[k]
      if type(v) == "table" then
        local items = {}
        for i = 1, #v do items[i] = tostring(v[i]) end
        v = "{" .. table.concat(items, "\0") .. "}"
      end
      parts[#parts + 1] = k .. "=" .. type(v) .. ":" .. tostring(v)
    end
    return table.concat(parts, "\n")
  end

  -- The context a call uses: opts.context, or one made from the context
  -- options (the same options, the same context). nil, msg, code when a
  -- file cannot be loaded.
  local function context_for(opts, fname, server)
    local ctx = opts.context
    if ctx ~= nil then
      for k in pairs(opts) do
        if CONTEXT[k] then
          error(("%s: option %s belongs to the context; give it to tls.context instead"):format(fname, k), 3)
        end
      end
      local ok, is_server = pcall(role, ctx)
      if not ok then
        error(("%s: option context must be a TLS context (got %s)"):format(fname, type(ctx)), 3)
      end
      if is_server ~= server then
        error(("%s: option context must be a %s context"):format(fname, server and "server" or "client"), 3)
      end
      return ctx
    end
    local copy = { server = server }
    for k, v in pairs(opts) do
      if CONTEXT[k] then copy[k] = v end
    end
    local key = canonical(copy)
    if made[key] then return made[key] end
    local c, msg, code = new_context(copy, fname) -- raises on a bad value
    if not c then return nil, msg, code end
    if #made_order >= MADE_MAX then made[table.remove(made_order, 1)] = nil end
    made[key], made_order[#made_order + 1] = c, key
    return c
  end

  local function check_timeout(opts, fname)
    local ms = opts.handshake_timeout
    if ms == nil then return DEFAULT_TIMEOUT end
    if ms == false then return nil end
    if type(ms) ~= "number" or not (ms > 0) or ms == math.huge then
      error(("%s: option handshake_timeout must be a positive number of milliseconds or false (got %s)")
        :format(fname, tostring(ms)), 3)
    end
    return ms
  end

  local function check_name(opts, fname)
    local name = opts.servername
    if name ~= nil and (type(name) ~= "string" or name == "" or name:find("\0", 1, true)) then
      error(("%s: option servername must be a non-empty host name (got %s)"):format(fname,
        type(name) == "string" and ("%q"):format(name) or type(name)), 3)
    end
    return name
  end

  local failed = async(function(msg, code) return nil, msg, code end)

  -- Await the handshake of s within ms (nil: no limit). s, or nil, msg,
  -- code with s closed.
  local function finish(s, ms, fname)
    local ok, msg, code
    if ms then
      ok, msg, code = timeout(ms, s:handshake()):await()
      if ok == nil and msg == "timeout" and code == nil then
        s:close()
        return nil, ("%s: the TLS handshake did not finish within %s ms"):format(fname, tostring(ms)),
          "ETIMEDOUT"
      end
    else
      ok, msg, code = s:handshake():await()
    end
    if not ok then
      s:close()
      return nil, (msg:gsub("^stream:handshake: ", fname .. ": ")), code
    end
    return s
  end

  -- Make s TLS and finish its handshake; once it is TLS, a cancelled or
  -- failed handshake closes s (a half-made TLS stream is of no use).
  local function secure(s, ctx, server, name, key, ms, fname)
    local ok, msg, code = attach(s, ctx, server, name, key, fname)
    if not ok then
      s:close()
      return nil, msg, code
    end
    local done = false
    defer(function() if not done then s:close() end end)
    local r, m, c = finish(s, ms, fname)
    done = true
    return r, m, c
  end

  local connect = async(function(conn, ctx, name, key, ms)
    local s, msg, code = conn:await()
    if not s then return nil, "tls.connect: " .. msg, code end
    return secure(s, ctx, false, name, key, ms, "tls.connect")
  end)

  --- tls.connect(host, port [, opts]) -> future of a TLS stream, or nil, msg, code
  function tls.connect(host, port, opts)
    check_open("tls.connect")
    opts = check_opts(opts, "tls.connect", 3, CALL)
    local ms = check_timeout(opts, "tls.connect")
    local name = check_name(opts, "tls.connect") or host
    local conn = net_connect(host, port) -- checks host and port now
    local ctx, msg, code = context_for(opts, "tls.connect", false)
    if not ctx then return failed(msg, code) end
    return connect(conn, ctx, name, ("%s:%s"):format(name, tostring(port)), ms)
  end

  local upgrade = async(secure)

  --- tls.wrap(stream [, opts]) -> future of the stream, now TLS (the client side of STARTTLS)
  function tls.wrap(s, opts)
    check_open("tls.wrap")
    check_stream(s, "tls.wrap")
    opts = check_opts(opts, "tls.wrap", 2, CALL)
    local ms = check_timeout(opts, "tls.wrap")
    local name = check_name(opts, "tls.wrap")
    local ctx, msg, code = context_for(opts, "tls.wrap", false)
    if not ctx then return failed(msg, code) end
    local _, verifies = role(ctx)
    if verifies and not name then
      error("tls.wrap: option servername is required to verify the peer (or verify = false)", 2)
    end
    local _, port = pcall(s.peer_address, s) -- resume per name and port where there is one
    return upgrade(s, ctx, false, name, type(port) == "number" and name .. ":" .. port or name, ms,
      "tls.wrap")
  end

  --- tls.accept(stream, opts) -> future of the stream, now TLS (the server side)
  function tls.accept(s, opts)
    check_open("tls.accept")
    check_stream(s, "tls.accept")
    if opts == nil then error("tls.accept: argument #2 must be an options table (got nil)", 2) end
    opts = check_opts(opts, "tls.accept", 2, CALL)
    if opts.servername ~= nil then error("tls.accept: option servername is for clients", 2) end
    local ms = check_timeout(opts, "tls.accept")
    local ctx, msg, code = context_for(opts, "tls.accept", true)
    if not ctx then return failed(msg, code) end
    return upgrade(s, ctx, true, nil, nil, ms, "tls.accept")
  end

  --- tls.listen(host, port, opts) -> listener whose connections are TLS, or nil, msg, code
  function tls.listen(host, port, opts)
    check_open("tls.listen")
    if opts == nil then error("tls.listen: argument #3 must be an options table (got nil)", 2) end
    opts = check_opts(opts, "tls.listen", 3, LISTEN)
    local ctx, msg, code = context_for({ context = opts.context, certfile = opts.certfile,
      keyfile = opts.keyfile, cafile = opts.cafile, capath = opts.capath, client_cert = opts.client_cert,
      alpn = opts.alpn, min_version = opts.min_version, max_version = opts.max_version,
      ciphers = opts.ciphers, ciphersuites = opts.ciphersuites, verify = opts.verify,
      session_cache = opts.session_cache }, "tls.listen", true)
    if not ctx then return nil, msg, code end
    local l, lmsg, lcode = net_listen(host, port, { backlog = opts.backlog, ipv6only = opts.ipv6only })
    if not l then return nil, (lmsg:gsub("^listen", "tls.listen")), lcode end
    set_listener(l, ctx)
    return l
  end

  --- tls.context(opts) -> a context to share between connections, or nil, msg, code
  function tls.context(opts)
    check_open("tls.context")
    if opts == nil then opts = {} end
    opts = check_opts(opts, "tls.context", 1, { server = true })
    return new_context(opts, "tls.context")
  end
end
