package = "cfuture"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null", -- installed from a checkout with `luarocks make`
}
description = {
  summary = "An async runtime for Lua, written in C on libuv",
  detailed = [[
Rust's async model (futures, poll, wakers, a task executor) in a small C core
on libuv: Lua coroutines become futures that are awaited, joined, selected
and cancelled, with timers and structured concurrency.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1", -- Lua 5.4, or LuaJIT 2.1 (see the README: LuaJIT)
}
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
  ZLIB = { header = "zlib.h", library = "z" },
  HTTP_PARSER = { header = "http_parser.h", library = "http_parser" },
}
build = {
  type = "builtin",
  modules = {
    ["cfuture.core"] = {
      sources = {
        "src/core/waiter.c", "src/core/task.c", "src/core/group.c", "src/core/heap.c",
        "src/uv/timer.c", "src/uv/work.c", "src/uv/fs.c", "src/uv/handle.c", "src/uv/stream.c",
        "src/uv/process.c", "src/uv/net.c", "src/uv/thread.c", "src/uv/tpool.c", "src/uv/tls.c",
        "src/lua/module.c", "src/lua/runtime.c", "src/lua/drive.c", "src/lua/report.c", "src/lua/check.c", "src/lua/future.c", "src/lua/coro.c", "src/lua/task.c",
        "src/lua/combinators.c",
        "src/lua/timer.c", "src/lua/custom.c", "src/lua/scope.c", "src/lua/taskset.c", "src/lua/introspect.c",
        "src/lua/sync.c", "src/lua/channel.c", "src/lua/job.c", "src/lua/fs.c", "src/lua/stream.c",
        "src/lua/process.c", "src/lua/signal.c", "src/lua/blocking.c", "src/lua/net.c", "src/lua/udp.c", "src/lua/dns.c",
        "src/lua/copy.c", "src/lua/call.c", "src/lua/thread.c", "src/lua/worker.c",
        "src/lua/thread_channel.c", "src/lua/trace.c", "src/lua/host.c", "src/lua/luv.c",
        "src/lua/tls.c", "src/lua/crypto.c",
        "src/lua/http_parser.c", "src/lua/zlib.c", "src/lua/ws.c",
      },
      incdirs = { "include", "$(LIBUV_INCDIR)", "$(OPENSSL_INCDIR)", "$(HTTP_PARSER_INCDIR)", "$(ZLIB_INCDIR)" },
      libdirs = { "$(LIBUV_LIBDIR)", "$(OPENSSL_LIBDIR)", "$(HTTP_PARSER_LIBDIR)", "$(ZLIB_LIBDIR)" },
      libraries = { "uv", "ssl", "crypto", "http_parser", "z", "m" },
    },
    ["cfuture"] = "lua/cfuture/init.lua",
    ["cfuture.sync"] = "lua/cfuture/sync.lua",
    ["cfuture.tls"] = "lua/cfuture/tls.lua",
    ["cfuture.tasks"] = "lua/cfuture/tasks.lua",
    ["cfuture.websocket"] = "lua/cfuture/websocket.lua",
    ["cfuture.coroutine"] = "lua/cfuture/coroutine.lua",
    ["cfuture.ngx"] = "lua/cfuture/ngx.lua",
    ["cfuture.socket"] = "lua/cfuture/socket.lua",
    ["cfuture.nvim"] = "lua/cfuture/nvim.lua",
    ["cfuture.nvim.test"] = "lua/cfuture/nvim/test.lua",
    ["cfuture.luv"] = "lua/cfuture/luv.lua",
    ["cfuture.http"] = "lua/cfuture/http.lua",
    ["cfuture.http.headers"] = "lua/cfuture/http/headers.lua",
    ["cfuture.http.body"] = "lua/cfuture/http/body.lua",
    ["cfuture.http.server"] = "lua/cfuture/http/server.lua",
    ["cfuture.http.client"] = "lua/cfuture/http/client.lua",
    ["cfuture.http.url"] = "lua/cfuture/http/url.lua",
  },
  copy_directories = { "examples", "docs", "library", "plugin" },
}
