-- cfuture.http.url: parsing, building, resolving references, percent-encoding.
local url = require "cfuture.http.url"

describe("http.url.parse", function()
  it("splits a full URL", function()
    local u = assert(url.parse("HTTPS://User:p%40ss@[::1]:8443/a/b?x=1&y=2#top"))
    assert.are.same({ scheme = "https", user = "User", password = "p@ss", host = "::1", port = 8443,
      default_port = false, path = "/a/b", query = "x=1&y=2", fragment = "top" }, u)
    assert.are.equal("/a/b?x=1&y=2", url.target(u))
    assert.are.equal("[::1]:8443", url.authority(u))
    assert.are.equal("https://[::1]:8443/a/b?x=1&y=2#top", url.build(u))
  end)

  it("fills in default ports and the root path, lowercases the host", function()
    local u = assert(url.parse("http://Example.ORG"))
    assert.are.same({ scheme = "http", host = "example.org", port = 80, default_port = true, path = "/" }, u)
    assert.are.equal("example.org", url.authority(u))
    assert.are.equal(443, url.parse("https://h/").port)
    assert.are.equal(80, url.parse("ws://h/").port)
    assert.are.equal(443, url.parse("wss://h").port)
    local e = assert(url.parse("http://h:80/"))
    assert.is_true(e.default_port)
    assert.are.equal("h", url.authority(e))
    assert.are.equal("h:8080", url.authority(url.parse("http://h:8080/")))
    assert.are.equal("127.0.0.1", url.parse("http://127.0.0.1:1/x").host)
    assert.are.equal("/?", url.target(url.parse("http://h?")))
    assert.are.equal("", url.parse("http://h/?").query)
    assert.is_nil(url.parse("http://h/").query)
  end)

  it("percent-encodes what may not be sent as it is, keeps existing escapes", function()
    local u = assert(url.parse("http://h/a b/ü?q=a b&r=\"x\"#f"))
    assert.are.equal("/a%20b/%C3%BC?q=a%20b&r=%22x%22", url.target(u))
    assert.are.equal("/a%2Fb%41", url.target(url.parse("http://h/a%2Fb%41")))
    assert.are.equal("/100%25/%25zz", url.target(url.parse("http://h/100%/%zz")))
    assert.are.equal("/p", url.target(url.parse("  http://h/p  ")))
  end)

  it("refuses what is not an absolute http URL, with a message", function()
    local cases = {
      { "http://h/\r\nX: y", "a URL must not contain NUL, CR or LF" },
      { "/just/a/path", "no scheme (an absolute URL starts with http:// or https://)" },
      { "http:/h", "no host (expected http://host/...)" },
      { "http://", "no host (expected http://host/...)" },
      { "http://:80/", "no host (expected http://host/...)" },
      { "http://h:99999/", "bad port 99999" },
      { "http://h:x/", "bad port x" },
      { "http://[::1/", "an IPv6 address is missing its closing bracket" },
      { "http://[zz]/", "not an IPv6 address: [zz]" },
      { "http://[::1]x/", "unexpected text after the IPv6 address" },
      { "http://a b/", "bad character in the host name a b" },
    }
    for _, c in ipairs(cases) do
      local u, err = url.parse(c[1])
      assert.is_nil(u, c[1])
      assert.are.equal(c[2], err)
    end
    assert.are.same({ nil, "not a string" }, { url.parse(42) })
    -- other schemes parse generically
    assert.are.same({ scheme = "mailto", path = "a@b" }, url.parse("mailto:a@b"))
  end)

  it("reads userinfo without a password, and an empty password", function()
    local u = url.parse("http://bob@h/")
    assert.are.equal("bob", u.user)
    assert.is_nil(u.password)
    assert.are.equal("", url.parse("http://bob:@h/").password)
    assert.are.equal("http://bob:pw@h/", url.build(url.parse("http://bob:pw@h/"), true))
    assert.are.equal("http://h/", url.build(url.parse("http://bob:pw@h/")))
  end)
end)

describe("http.url.resolve", function()
  -- RFC 3986 5.4's examples
  local base = "http://a/b/c/d;p?q"
  local normal = {
    { "g:h", "g:h" }, { "g", "http://a/b/c/g" }, { "./g", "http://a/b/c/g" }, { "g/", "http://a/b/c/g/" },
    { "/g", "http://a/g" }, { "//g", "http://g/" }, { "?y", "http://a/b/c/d;p?y" },
    { "g?y", "http://a/b/c/g?y" }, { "#s", "http://a/b/c/d;p?q#s" }, { "g#s", "http://a/b/c/g#s" },
    { "g?y#s", "http://a/b/c/g?y#s" }, { ";x", "http://a/b/c/;x" }, { "g;x", "http://a/b/c/g;x" },
    { "", "http://a/b/c/d;p?q" }, { ".", "http://a/b/c/" }, { "./", "http://a/b/c/" },
    { "..", "http://a/b/" }, { "../", "http://a/b/" }, { "../g", "http://a/b/g" },
    { "../..", "http://a/" }, { "../../", "http://a/" }, { "../../g", "http://a/g" },
    { "../../../g", "http://a/g" }, { "/./g", "http://a/g" }, { "/../g", "http://a/g" },
    { "g.", "http://a/b/c/g." }, { ".g", "http://a/b/c/.g" }, { "g..", "http://a/b/c/g.." },
    { "./../g", "http://a/b/g" }, { "./g/.", "http://a/b/c/g/" }, { "g/./h", "http://a/b/c/g/h" },
    { "g/../h", "http://a/b/c/h" }, { "http://x:8080/p/../q", "http://x:8080/q" },
  }
  for _, c in ipairs(normal) do
    it(("resolves %q"):format(c[1]), function()
      assert.are.equal(c[2], url.resolve(base, c[1]))
    end)
  end

  it("keeps the port and userinfo of the base, and its fragment when the reference has none", function()
    assert.are.equal("http://u:p@h:8080/x", url.resolve("http://u:p@h:8080/a/b", "/x"))
    assert.are.equal("https://h/new#frag", url.resolve("https://h/old#frag", "/new"))
    assert.are.equal("https://h/new#other", url.resolve("https://h/old#frag", "/new#other"))
    assert.are.equal("http://h/a%20b", url.resolve("http://h/", "a b"))
    assert.are.same({ nil, "a URL must not contain NUL, CR or LF" }, { url.resolve("http://h/", "/a\r\nb") })
    assert.are.same({ nil, "bad port x" }, { url.resolve("http://h/", "http://h:x/") })
  end)
end)

describe("http.url encoding", function()
  it("encodes and decodes components and queries", function()
    assert.are.equal("a%20b%2Fc~%C3%A9", url.encode("a b/c~é"))
    assert.are.equal("a b/c~é", url.decode("a%20b%2Fc~%C3%A9"))
    assert.are.equal("a+b %zz", url.decode("a+b %zz"))
    assert.are.equal("a b", url.decode("a+b", true))
    assert.are.equal("a=1&b=2&b=3&c&e=x%26y", url.encode_query({ a = 1, b = { 2, 3 }, c = true, d = false, e = "x&y" }))
    assert.are.equal("z=1&a=2", url.encode_query({ { "z", 1 }, { "a", 2 } }))
    assert.are.same({ a = "1", b = { "2", "3" }, c = "", ["x y"] = "é" },
      url.decode_query("a=1&b=2&b=3&c&x+y=%C3%A9"))
    assert.are.same({}, url.decode_query(nil))
  end)
end)
