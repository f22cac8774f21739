-- cf.crypto: digests, HMAC and PBKDF2 as futures (small inputs at the first
-- poll, large ones on libuv's thread pool), the streaming hasher, secure
-- random bytes, constant-time comparison, hex and base64. Results are
-- checked against published test vectors and the system's own tools.
local cf = require "cfuture"
local support = require "support"
local crypto = cf.crypto
local hex, unhex = crypto.hex, crypto.unhex

-- Under valgrind (a time scale of 25) the big inputs shrink.
local valgrind = support.slow >= 10
local MiB = 1024 * 1024

local function run(fn) return cf.block_on(fn) end
local function await(f) return cf.block_on(f) end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

-- Byte-wise XOR of two equal-length strings (no bit operators: the file
-- parses on LuaJIT too).
local function xor(a, b)
  local out = {}
  for i = 1, #a do
    local x, y, r, bit = a:byte(i), b:byte(i), 0, 1
    for _ = 1, 8 do
      if x % 2 ~= y % 2 then r = r + bit end
      x, y, bit = math.floor(x / 2), math.floor(y / 2), bit * 2
    end
    out[i] = string.char(r)
  end
  return table.concat(out)
end

-- Deterministic noise.
local function noise(n, seed)
  local t = {}
  seed = seed or 7
  for i = 1, n do
    seed = (seed * 1103515245 + 12345) % 2147483648
    t[i] = string.char(math.floor(seed / 65536) % 256)
  end
  return table.concat(t)
end

describe("cf.crypto.digest", function()
  it("gives the known digests of \"\" and \"abc\" (FIPS 180-4, RFC 1321)", function()
    local want = {
      md5 = { "d41d8cd98f00b204e9800998ecf8427e", "900150983cd24fb0d6963f7d28e17f72" },
      sha1 = { "da39a3ee5e6b4b0d3255bfef95601890afd80709", "a9993e364706816aba3e25717850c26c9cd0d89d" },
      sha224 = { "d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f",
        "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7" },
      sha256 = { "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
      sha384 = { "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7" },
      sha512 = { "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f" },
    }
    run(function()
      for alg, w in pairs(want) do
        local empty = crypto.digest(alg, ""):await()
        assert.are.equal(w[1], hex(empty), alg)
        assert.are.equal(#w[1] / 2, #empty)
        assert.are.equal(w[2], hex(crypto.digest(alg, "abc"):await()), alg)
        assert.are.equal(w[2], hex(crypto.digest(alg:upper(), "abc"):await()), alg)
      end
      -- FIPS 180-4's two-block message
      assert.are.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        hex(crypto.digest("sha256", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"):await()))
    end)
  end)

  it("completes a small input at its first poll, with no thread hop", function()
    run(function()
      local f = crypto.digest("sha256", "abc")
      -- select polls in order: a future ready at its first poll wins
      -- against yield_now, which is pending once
      local i, d = cf.select(f, cf.yield_now()):await()
      assert.are.equal(1, i)
      assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex(d))
      assert.are.equal("taken", f:state())
      local h = crypto.hmac("sha256", "k", string.rep("x", 65535)) -- 64 KiB in all
      assert.are.equal(1, (cf.select(h, cf.yield_now()):await()))
      local p = crypto.pbkdf2("sha1", "password", "salt", 2, 20)
      assert.are.equal(1, (cf.select(p, cf.yield_now()):await()))
    end)
  end)

  it("runs a large input on the thread pool, which the future's loser leaves", function()
    run(function()
      local big = string.rep("y", 65537)
      local f = crypto.digest("sha256", big)
      local i = cf.select(f, cf.yield_now()):await()
      assert.are.equal(2, i) -- still on the pool when yield_now came back
      assert.are.equal("cancelled", f:state())
      assert.has_error(function() f:await() end,
        "await: argument #1: the future was cancelled (dropped by select, timeout or abort)")
      -- a fresh one gets the right answer
      assert.are.equal(hex(crypto.digest("sha256", big):await()),
        (sh("printf 'y%.0s' $(seq 65537) | sha256sum"):match("^(%x+)")))
      local p = crypto.pbkdf2("sha1", "password", "salt", 4096, 20)
      assert.are.equal(2, (cf.select(p, cf.yield_now()):await()))
    end)
  end)

  it("equals sha256sum, sha1sum, md5sum, sha512sum and openssl dgst on a 5 MiB random file", function()
    local path = os.tmpname()
    sh(("head -c %d /dev/urandom > %s"):format(5 * MiB, path))
    local data = support.read_file(path)
    assert.are.equal(5 * MiB, #data)
    local function tool(cmd) return (sh(cmd .. " " .. path):match("^(%x+)")) end
    run(function()
      local jobs = {}
      for _, alg in ipairs({ "md5", "sha1", "sha224", "sha256", "sha384", "sha512" }) do
        jobs[#jobs + 1] = crypto.digest(alg, data)
      end
      local got = cf.join_all(jobs):await() -- six pool jobs at once
      assert.are.equal(tool("md5sum"), hex(got[1]))
      assert.are.equal(tool("sha1sum"), hex(got[2]))
      assert.are.equal(tool("openssl dgst -sha224 -r"), hex(got[3]))
      assert.are.equal(tool("sha256sum"), hex(got[4]))
      assert.are.equal(tool("openssl dgst -sha384 -r"), hex(got[5]))
      assert.are.equal(tool("sha512sum"), hex(got[6]))
      assert.are.equal(tool("openssl dgst -sha256 -hmac secret-key -r"),
        hex(crypto.hmac("sha256", "secret-key", data):await()))
      assert.are.equal(tool("openssl dgst -sha1 -hmac k -r"), hex(crypto.hmac("sha1", "k", data):await()))
    end)
    os.remove(path)
  end)

  it("describes a pending pool job in cf.tasks()", function()
    run(function()
      local data = string.rep("z", (valgrind and 4 or 32) * MiB)
      local h = cf.spawn { function() return crypto.digest("sha512", data):await() end, name = "hashing" }
      cf.yield_now():await()
      local seen
      for _, t in ipairs(cf.tasks()) do
        if t.name == "hashing" then seen = t.awaiting end
      end
      assert.are.equal(("crypto.digest sha512 (%d bytes, on the thread pool)"):format(#data), seen)
      assert.are.equal(64, #h:await())
      assert.matches("^cfuture%.Future%(crypto%.pbkdf2 sha256 %(5 iterations%), fresh%)",
        tostring(crypto.pbkdf2("sha256", "p", "s", 5, 32)))
    end)
  end)
end)

describe("cf.crypto.hmac", function()
  it("gives RFC 4231's HMAC-SHA256 test cases", function()
    local aa = string.rep("\170", 131)
    local cases = {
      { string.rep("\11", 20), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
      { "Jefe", "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
      { string.rep("\170", 20), string.rep("\221", 50), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
      { unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), string.rep("\205", 50),
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
      { aa, "Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
      { aa, "This is a test using a larger than block-size key and a larger than block-size data. "
        .. "The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
    }
    run(function()
      for i, c in ipairs(cases) do
        assert.are.equal(c[3], hex(crypto.hmac("sha256", c[1], c[2]):await()), "case " .. i)
      end
      -- case 5: the output truncated to 128 bits
      local mac = crypto.hmac("SHA256", string.rep("\12", 20), "Test With Truncation"):await()
      assert.are.equal("a3b6167473100ee06e0c796c2955552b", hex(mac:sub(1, 16)))
      -- an empty key and message
      assert.are.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
        hex(crypto.hmac("sha256", "", ""):await()))
    end)
  end)

  it("derives AWS Signature Version 4's example signing key", function()
    run(function()
      local k = crypto.hmac("sha256", "AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215"):await()
      assert.are.equal("969fbb94feb542b71ede6f87fe4d5fa29c789342b0f407474670f0c2489e0a0d", hex(k))
      for _, part in ipairs({ "us-east-1", "iam", "aws4_request" }) do
        k = crypto.hmac("sha256", k, part):await()
      end
      assert.are.equal("f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d", hex(k))
    end)
  end)
end)

describe("cf.crypto.pbkdf2", function()
  it("gives RFC 6070's PBKDF2-HMAC-SHA1 vectors", function()
    run(function()
      assert.are.equal("0c60c80f961f0e71f3a9b524af6012062fe037a6",
        hex(crypto.pbkdf2("sha1", "password", "salt", 1, 20):await()))
      assert.are.equal("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957",
        hex(crypto.pbkdf2("sha1", "password", "salt", 2, 20):await()))
      assert.are.equal("4b007901b765489abead49d926f721d065a429c1",
        hex(crypto.pbkdf2("sha1", "password", "salt", 4096, 20):await()))
      assert.are.equal("3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
        hex(crypto.pbkdf2("sha1", "passwordPASSWORDpassword",
          "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 25):await()))
      assert.are.equal("56fa6aa75548099dcc37d7f03425e0c3",
        hex(crypto.pbkdf2("sha1", "pass\0word", "sa\0lt", 4096, 16):await()))
    end)
  end)

  it("gives RFC 7914's PBKDF2-HMAC-SHA256 vectors", function()
    run(function()
      assert.are.equal("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        .. "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
        hex(crypto.pbkdf2("sha256", "passwd", "salt", 1, 64):await()))
      if valgrind then return end -- 160000 HMACs: seconds under valgrind
      assert.are.equal("4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        .. "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
        hex(crypto.pbkdf2("sha256", "Password", "NaCl", 80000, 64):await()))
    end)
  end)

  it("derives keys longer than one digest, up to 1 MiB", function()
    run(function()
      local long = crypto.pbkdf2("sha256", "passwd", "salt", 1, 1000):await()
      assert.are.equal(1000, #long)
      assert.are.equal(hex(crypto.pbkdf2("sha256", "passwd", "salt", 1, 64):await()), hex(long:sub(1, 64)))
      assert.are.equal(MiB, #crypto.pbkdf2("sha1", "", "", 1, MiB):await())
    end)
  end)

  it("computes RFC 7677's SCRAM-SHA-256 exchange (the client proof and the server signature)", function()
    run(function()
      local client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
      local server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        .. "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
      local final_without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
      local salt = assert(crypto.unbase64(server_first:match("s=([^,]+)")))
      local iterations = tonumber(server_first:match("i=(%d+)"))
      local salted = crypto.pbkdf2("sha256", "pencil", salt, iterations, 32):await()
      local client_key = crypto.hmac("sha256", salted, "Client Key"):await()
      local stored_key = crypto.digest("sha256", client_key):await()
      local auth = client_first_bare .. "," .. server_first .. "," .. final_without_proof
      local signature = crypto.hmac("sha256", stored_key, auth):await()
      local proof = xor(client_key, signature)
      assert.are.equal("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        .. "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        final_without_proof .. ",p=" .. crypto.base64(proof))
      local server_key = crypto.hmac("sha256", salted, "Server Key"):await()
      assert.are.equal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        "v=" .. crypto.base64(crypto.hmac("sha256", server_key, auth):await()))
      -- the server's check: H(proof XOR signature) is the stored key
      assert.is_true(crypto.equal(stored_key, crypto.digest("sha256", xor(proof, signature)):await()))
    end)
  end)
end)

describe("cf.crypto.hasher", function()
  it("digests data given in pieces as the one-shot digest does", function()
    local data = noise(valgrind and 70000 or 1500000, 11)
    run(function()
      for _, alg in ipairs({ "md5", "sha1", "sha224", "sha256", "sha384", "sha512" }) do
        local h = crypto.hasher(alg)
        local pos, size = 1, 1
        while pos <= #data do
          assert.are.equal(h, h:update(data:sub(pos, pos + size - 1)))
          pos = pos + size
          size = size * 3 % 65521 + 1 -- pieces from 1 byte to 64 KiB
        end
        h:update("")
        assert.are.equal(hex(crypto.digest(alg, data):await()), hex(h:digest()), alg)
        local k = crypto.hasher(alg, "key")
        for i = 1, #data, 100000 do k:update(data:sub(i, i + 99999)) end
        assert.are.equal(hex(crypto.hmac(alg, "key", data):await()), hex(k:digest()), alg)
      end
      assert.are.equal(hex(crypto.digest("sha256", ""):await()), hex(crypto.hasher("sha256"):digest()))
      assert.are.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
        hex(crypto.hasher("sha256", ""):digest()))
    end)
  end)

  it("streams a 5 MiB file read in chunks to the digest sha256sum gives", function()
    local path = os.tmpname()
    sh(("head -c %d /dev/urandom > %s"):format(5 * MiB, path))
    local want = sh("sha256sum " .. path):match("^(%x+)")
    run(function()
      local f = assert(cf.fs.open(path):await())
      local h = crypto.hasher("sha256")
      while true do
        local piece = f:read(65536):await()
        if not piece then break end
        h:update(piece)
      end
      f:close():await()
      assert.are.equal(want, hex(h:digest()))
    end)
    os.remove(path)
  end)

  it("is finished after digest(), and says so", function()
    local h = crypto.hasher("sha1")
    assert.matches("^cfuture%.Hasher%(sha1%): 0x%x+$", tostring(h))
    assert.are.equal("cfuture.Hasher", getmetatable(h).__name)
    assert.are.equal("a9993e364706816aba3e25717850c26c9cd0d89d", hex(h:update("abc"):digest()))
    assert.matches("^cfuture%.Hasher%(sha1, finished%): 0x%x+$", tostring(h))
    assert.has_error(function() h:update("x") end, "hasher:update: the hasher is finished")
    assert.has_error(function() h:digest() end, "hasher:digest: the hasher is finished")
    assert.matches("^cfuture%.Hasher%(hmac sha512%): 0x%x+$", tostring(crypto.hasher("sha512", "k")))
    -- collected unfinished: the finaliser frees its context (valgrind checks)
    for _ = 1, 100 do crypto.hasher("sha256", "k"):update("x") end
    support.full_gc()
  end)

  it("refuses bad arguments, naming the method", function()
    local h = crypto.hasher("sha256")
    assert.has_error(function() h.update("x") end,
      "hasher:update: argument #1 must be a hasher (call it with a colon; got string)")
    assert.has_error(function() h.digest({}) end,
      "hasher:digest: argument #1 must be a hasher (call it with a colon; got table)")
    assert.has_error(function() h:update() end, "hasher:update: argument #2 must be a string (got no value)")
    assert.has_error(function() h:update(12) end, "hasher:update: argument #2 must be a string (got number)")
    assert.has_error(function() crypto.hasher("sha3") end,
      'crypto.hasher: argument #1 must be a digest name (md5, sha1, sha224, sha256, sha384, sha512; got "sha3")')
    assert.has_error(function() crypto.hasher("sha256", 5) end,
      "crypto.hasher: argument #2 must be a key string or nil (got number)")
    assert.are.equal(32, #h:digest()) -- the failed calls changed nothing
  end)
end)

describe("cf.crypto hex and base64", function()
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  all = table.concat(all)

  it("round-trips every byte value through hex", function()
    local h = hex(all)
    assert.are.equal(512, #h)
    assert.are.equal("000102", h:sub(1, 6))
    assert.are.equal("fdfeff", h:sub(-6))
    assert.is_nil(h:find("[^0-9a-f]"))
    assert.are.equal(all, unhex(h))
    assert.are.equal(all, unhex(h:upper()))
    assert.are.equal("666f6f626172", hex("foobar")) -- RFC 4648 base16, in lowercase
    assert.are.equal("foobar", unhex("666F6F626172"))
    assert.are.equal("", hex(""))
    assert.are.equal("", unhex(""))
    assert.are.equal("\222\173\190\239", unhex("DEADbeef"))
  end)

  it("gives nil and a message naming the position for bad hex", function()
    assert.are.same({ nil, "crypto.unhex: odd number of hex digits: the last has no pair at position 3" },
      { unhex("abc") })
    assert.are.same({ nil, 'crypto.unhex: bad character "g" at position 3' }, { unhex("12g4") })
    assert.are.same({ nil, "crypto.unhex: bad character byte 0x00 at position 3" }, { unhex("12\0" .. "4") })
    assert.are.same({ nil, "crypto.unhex: bad character byte 0x20 at position 1" }, { unhex(" 1") })
    assert.are.same({ nil, 'crypto.unhex: bad character "x" at position 2' }, { unhex("0x12") })
  end)

  it("gives RFC 4648's base64 vectors, and base64url without padding", function()
    local vectors = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
      fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" }
    for plain, enc in pairs(vectors) do
      assert.are.equal(enc, crypto.base64(plain))
      assert.are.equal(plain, crypto.unbase64(enc))
      assert.are.equal(plain, crypto.unbase64((enc:gsub("=", "")))) -- padding may be left out
      assert.are.equal((enc:gsub("=", "")), crypto.base64(plain, true))
      assert.are.equal(plain, crypto.unbase64((enc:gsub("=", "")), true))
    end
    assert.are.equal("+/8=", crypto.base64("\251\255"))
    assert.are.equal("-_8", crypto.base64("\251\255", true))
    assert.are.equal("\251\255", crypto.unbase64("-_8", true))
    assert.are.equal("\251\255", crypto.unbase64("-_8=", true))
    assert.are.equal("\251\255", crypto.unbase64("+/8="))
    assert.are.equal("\251\255", crypto.unbase64("+/8", false))
    -- RFC 6455's WebSocket accept key: base64(SHA-1(key .. GUID))
    assert.are.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", crypto.base64(await(crypto.digest("sha1",
      "dGhlIHNhbXBsZSBub25jZQ==" .. "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))))
  end)

  it("round-trips every byte value and every length through both alphabets", function()
    for _, url in ipairs({ false, true }) do
      local enc = crypto.base64(all, url)
      assert.are.equal(url and 342 or 344, #enc)
      assert.are.equal(all, crypto.unbase64(enc, url))
      for n = 0, 70 do
        local s = noise(n, n + 1)
        local e = crypto.base64(s, url)
        assert.are.equal(url and math.ceil(n * 4 / 3) or math.ceil(n / 3) * 4, #e)
        assert.are.equal(s, crypto.unbase64(e, url), n)
      end
    end
    local pieces = {}
    for i = 1, 256 do pieces[i] = all:sub(i) end
    local big = table.concat(pieces) -- every byte value in every position mod 3
    assert.are.equal(big, crypto.unbase64(crypto.base64(big)))
  end)

  it("gives nil and a message naming the position for bad base64", function()
    local function bad(msg, ...) assert.are.same({ nil, "crypto.unbase64: " .. msg }, { crypto.unbase64(...) }) end
    bad('bad character "*" at position 5', "Zm9v*mFy")
    bad("bad character byte 0x20 at position 5", "Zm9v YmFy")
    bad("bad character byte 0x0a at position 5", "Zm9v\nYmFy")
    bad('bad character "=" at position 3', "Zm=v")
    bad('bad character "-" at position 1', "-_8")
    bad('bad character "+" at position 1', "+/8=", true)
    bad("truncated input: a lone character at position 5", "Zm9vY")
    bad("padding that does not complete a group of four at position 4", "Zm8==")
    bad("padding that does not complete a group of four at position 5", "Zm9v=")
    bad("padding that does not complete a group of four at position 1", "====")
    bad("padding that does not complete a group of four at position 3", "Zg=")
    bad("non-zero unused bits (not the canonical encoding) at position 3", "Zm9=")
    bad("non-zero unused bits (not the canonical encoding) at position 2", "Zh==")
    assert.are.equal("", crypto.unbase64(""))
  end)
end)

describe("cf.crypto.random and cf.crypto.equal", function()
  it("gives n secure random bytes, different each time", function()
    local a, b = crypto.random(32), crypto.random(32)
    assert.are.equal(32, #a)
    assert.are.equal(32, #b)
    assert.are_not.equal(a, b)
    assert.are.equal("", crypto.random(0))
    assert.are.equal(1, #crypto.random(1))
    local m = crypto.random(MiB)
    assert.are.equal(MiB, #m)
    -- every byte value turns up in a megabyte of random bytes
    local seen = {}
    for i = 1, 65536 do seen[m:byte(i)] = true end
    for v = 0, 255 do assert.is_true(seen[v], v) end
  end)

  it("compares strings: equal contents true, anything else false", function()
    assert.is_true(crypto.equal("", ""))
    assert.is_true(crypto.equal("abc", "abc"))
    assert.is_true(crypto.equal("a\0b", "a\0b"))
    assert.is_false(crypto.equal("abc", "abd"))
    assert.is_false(crypto.equal("abc", "ab"))
    assert.is_false(crypto.equal("", "a"))
    local r = crypto.random(64)
    assert.is_true(crypto.equal(r, r:sub(1)))
    -- the last byte changed to one it cannot already be (a random "x"
    -- would make r:sub(1, 63) .. "x" equal, one run in 256)
    local flipped = string.char((r:byte(64) + 1) % 256)
    assert.is_false(crypto.equal(r, r:sub(1, 63) .. flipped))
  end)
end)

describe("cf.crypto on the thread pool", function()
  -- Ticks of a 5 ms ticker while f runs: the count, the longest gap, and
  -- how long f took.
  local function ticking_while(f)
    local ticks, worst, done = 0, 0, false
    local ticker = cf.spawn(function()
      local last = cf.now()
      while not done do
        cf.sleep(5):await()
        local now = cf.now()
        if now - last > worst then worst = now - last end
        last = now
        ticks = ticks + 1
      end
    end)
    cf.yield_now():await()
    local t0 = cf.now()
    local r = f:await()
    local took = cf.now() - t0
    done = true
    ticker:await()
    return r, ticks, worst, took
  end

  it("keeps the loop responsive while a 64 MiB digest runs", function()
    local data = string.rep("\1", (valgrind and 8 or 64) * MiB)
    run(function()
      local d, ticks, worst, took = ticking_while(crypto.digest("sha256", data))
      assert.are.equal(32, #d)
      -- a blocked loop would tick once at most, after the work (valgrind
      -- runs one thread at a time: a busy pool thread holds the loop back)
      if valgrind then return end
      assert.is_true(ticks >= 3, ticks .. " ticks in " .. took .. " ms")
      assert.is_true(worst < 250 * support.slow, worst)
    end)
  end)

  it("keeps the loop responsive while a 600000-iteration pbkdf2 runs", function()
    local iterations = valgrind and 20000 or 600000
    run(function()
      local k, ticks, worst, took = ticking_while(crypto.pbkdf2("sha256", "pw", "salt", iterations, 32))
      assert.are.equal(32, #k)
      -- a blocked loop would tick once at most, after the work (valgrind
      -- runs one thread at a time: a busy pool thread holds the loop back)
      if valgrind then return end
      assert.is_true(ticks >= 3, ticks .. " ticks in " .. took .. " ms")
      assert.is_true(worst < 250 * support.slow, worst)
    end)
  end)

  it("cancels a pool digest (timeout, select) without losing or leaking anything", function()
    local data = string.rep("c", valgrind and MiB or 32 * MiB)
    run(function()
      local want = crypto.digest("sha256", data):await()
      local f = crypto.digest("sha256", data)
      local r = { cf.timeout(1, f):await() }
      if valgrind and r[1] == want then
        -- one thread at a time: the pool may finish before the loop runs
        assert.are.equal("taken", f:state())
      else
        assert.are.same({ nil, "timeout" }, r)
        assert.are.equal("cancelled", f:state())
      end
      local g = crypto.hmac("sha256", "k", data)
      assert.are.equal(2, (cf.select(g, cf.yield_now()):await()))
      assert.are.equal("cancelled", g:state())
      -- many at once, dropped while they run or before they start; their
      -- futures collected while the pool still works on the copies
      for _ = 1, valgrind and 1 or 3 do
        local fs = {}
        for i = 1, valgrind and 6 or 12 do fs[i] = crypto.digest("sha256", data) end
        cf.timeout(2, cf.join_all(fs)):await()
        fs = nil
        support.full_gc()
      end
      -- nothing lost: the same input still gives the same digest
      assert.are.equal(want, crypto.digest("sha256", data):await())
      assert.are.equal(want, crypto.hasher("sha256"):update(data):digest())
    end)
  end)

  it("frees the pool thread of a cancelled digest at once", function()
    -- one pool thread: a job queued behind a digest waits for it. How long
    -- it waits when the digest is left to run, and when it is aborted.
    local out, code, _, err = support.run_lua(([[
      local cf = require "cfuture"
      cf.block_on(function()
        local data = string.rep("f", %d)
        local function wait_behind(abort)
          local h = cf.spawn(cf.crypto.digest("sha512", data))
          cf.sleep(5):await() -- copied, submitted, running
          if abort then h:abort() end
          local t0 = cf.now()
          assert(cf.blocking(function() return 1 end):await() == 1)
          local waited = cf.now() - t0
          if not abort then assert(#h:await() == 64) end
          return waited
        end
        print(wait_behind(false), wait_behind(true))
      end)
    ]]):format((valgrind and 8 or 64) * MiB), "UV_THREADPOOL_SIZE=1 ")
    assert.are.equal(0, code, err)
    local ran, aborted = out:match("^(%S+)%s+(%S+)")
    ran, aborted = tonumber(ran), tonumber(aborted)
    -- the aborted job stops at its next megabyte instead of running on
    assert.is_true(aborted < ran / 2, ("waited %g ms behind an aborted digest, %g ms behind one left to run")
      :format(aborted, ran))
  end)
end)

describe("cf.crypto arguments", function()
  local NAMES = "md5, sha1, sha224, sha256, sha384, sha512"

  it("raises for bad arguments, naming the function and the argument", function()
    local cases = {
      { function() crypto.digest("x", "y") end,
        'crypto.digest: argument #1 must be a digest name (' .. NAMES .. '; got "x")' },
      { function() crypto.digest(nil, "y") end,
        "crypto.digest: argument #1 must be a digest name (" .. NAMES .. "; got nil)" },
      { function() crypto.digest(256, "y") end,
        "crypto.digest: argument #1 must be a digest name (" .. NAMES .. "; got number)" },
      { function() crypto.digest("sha256\0", "y") end,
        "crypto.digest: argument #1 must be a digest name (" .. NAMES .. "; got a string with a NUL byte)" },
      { function() crypto.digest(string.rep("s", 40), "y") end,
        'crypto.digest: argument #1 must be a digest name (' .. NAMES .. '; got "'
          .. string.rep("s", 32) .. '...")' },
      { function() crypto.digest("sha256") end, "crypto.digest: argument #2 must be a string (got no value)" },
      { function() crypto.digest("sha256", 5) end, "crypto.digest: argument #2 must be a string (got number)" },
      { function() crypto.hmac("sha256", nil, "x") end, "crypto.hmac: argument #2 must be a string (got nil)" },
      { function() crypto.hmac("sha256", "k", {}) end, "crypto.hmac: argument #3 must be a string (got table)" },
      { function() crypto.hmac("md4", "k", "x") end,
        'crypto.hmac: argument #1 must be a digest name (' .. NAMES .. '; got "md4")' },
      { function() crypto.pbkdf2("sha256", "p", "s", 0, 32) end,
        "crypto.pbkdf2: argument #4 must be an integer from 1 to 2147483647 (got 0)" },
      { function() crypto.pbkdf2("sha256", "p", "s", 1.5, 32) end,
        "crypto.pbkdf2: argument #4 must be an integer from 1 to 2147483647 (got 1.5)" },
      { function() crypto.pbkdf2("sha256", "p", "s", "10", 32) end,
        "crypto.pbkdf2: argument #4 must be an integer from 1 to 2147483647 (got string)" },
      { function() crypto.pbkdf2("sha256", "p", "s", 2147483648, 32) end,
        "crypto.pbkdf2: argument #4 must be an integer from 1 to 2147483647 (got 2147483648)" },
      { function() crypto.pbkdf2("sha256", "p", "s", 1, 0) end,
        "crypto.pbkdf2: argument #5 must be an integer from 1 to 1048576 (got 0)" },
      { function() crypto.pbkdf2("sha256", "p", "s", 1, 1048577) end,
        "crypto.pbkdf2: argument #5 must be an integer from 1 to 1048576 (got 1048577)" },
      { function() crypto.pbkdf2("sha256", "p", "s", 1) end,
        "crypto.pbkdf2: argument #5 must be an integer from 1 to 1048576 (got no value)" },
      { function() crypto.pbkdf2("sha256", "p", nil, 1, 1) end,
        "crypto.pbkdf2: argument #3 must be a string (got nil)" },
      { function() crypto.random(-1) end, "crypto.random: argument #1 must be an integer from 0 to 1048576 (got -1)" },
      { function() crypto.random(1048577) end,
        "crypto.random: argument #1 must be an integer from 0 to 1048576 (got 1048577)" },
      { function() crypto.random() end, "crypto.random: argument #1 must be an integer from 0 to 1048576 (got no value)" },
      { function() crypto.random("8") end, "crypto.random: argument #1 must be an integer from 0 to 1048576 (got string)" },
      { function() crypto.equal("a") end, "crypto.equal: argument #2 must be a string (got no value)" },
      { function() crypto.equal(1, "a") end, "crypto.equal: argument #1 must be a string (got number)" },
      { function() crypto.hex({}) end, "crypto.hex: argument #1 must be a string (got table)" },
      { function() crypto.unhex(nil) end, "crypto.unhex: argument #1 must be a string (got nil)" },
      { function() crypto.base64(true) end, "crypto.base64: argument #1 must be a string (got boolean)" },
      { function() crypto.base64("x", "yes") end, "crypto.base64: argument #2 must be a boolean or nil (got string)" },
      { function() crypto.unbase64("x", 1) end, "crypto.unbase64: argument #2 must be a boolean or nil (got number)" },
      { function() crypto.unbase64() end, "crypto.unbase64: argument #1 must be a string (got no value)" },
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
  end)

  it("raises once the runtime is closed, from functions and a hasher kept past it", function()
    local out, code, _, err = support.run_lua([[
      local keep = {}
      local function probe()
        local res = {}
        local function try(f, ...) res[#res + 1] = select(2, pcall(f, ...)) end
        try(keep.digest, "sha256", "x")
        try(keep.hmac, "sha256", "k", "x")
        try(keep.pbkdf2, "sha256", "p", "s", 1, 32)
        try(keep.hasher, "sha256")
        try(keep.random, 8)
        try(keep.equal, "a", "a")
        try(keep.hex, "a")
        try(keep.unhex, "61")
        try(keep.base64, "a")
        try(keep.unbase64, "YQ==")
        try(keep.h.update, keep.h, "x")
        try(keep.h.digest, keep.h)
        res[#res + 1] = tostring(keep.h):match("^cfuture%.Hasher%(sha256")
        io.stdout:write(table.concat(res, "\n"), "\n")
      end
      -- made before the runtime's guard, so finalised after it at lua_close
      local sentinel
      if newproxy then
        sentinel = newproxy(true)
        getmetatable(sentinel).__gc = probe
      else
        sentinel = setmetatable({}, { __gc = probe })
      end
      _G.sentinel = sentinel
      local cf = require "cfuture"
      for k, v in pairs(cf.crypto) do keep[k] = v end
      keep.h = cf.crypto.hasher("sha256")
      keep.pending = cf.crypto.digest("sha256", string.rep("x", 1048576))
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal(table.concat({
      "crypto.digest: the cfuture runtime is closed", "crypto.hmac: the cfuture runtime is closed",
      "crypto.pbkdf2: the cfuture runtime is closed", "crypto.hasher: the cfuture runtime is closed",
      "crypto.random: the cfuture runtime is closed", "crypto.equal: the cfuture runtime is closed",
      "crypto.hex: the cfuture runtime is closed", "crypto.unhex: the cfuture runtime is closed",
      "crypto.base64: the cfuture runtime is closed", "crypto.unbase64: the cfuture runtime is closed",
      "hasher:update: the cfuture runtime is closed", "hasher:digest: the cfuture runtime is closed",
      "cfuture.Hasher(sha256", "" }, "\n"), out)
  end)
end)
