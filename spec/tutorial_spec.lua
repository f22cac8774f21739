-- docs/TUTORIAL.md says what its programs print, and quotes examples/chat.lua:
-- both are checked here. Each program runs in a fresh interpreter with the
-- clock paused, so a 5-second program takes milliseconds and its output is
-- exact; short ones run in real time too, to show both agree.
local support = require "support"

local doc = support.read_file("docs/TUTORIAL.md")

-- Every ```lua block followed by a ```text block is a program and its output;
-- other ```lua blocks are excerpts.
local programs, excerpts = {}, {}
do
  local pos = 1
  while true do
    local s, e, code = doc:find("```lua\n(.-)```\n", pos)
    if not s then break end
    local out = doc:match("^%s*```text\n(.-)```\n", e + 1)
    if out then
      programs[#programs + 1] = { code = code, out = out }
    else
      excerpts[#excerpts + 1] = code
    end
    pos = e + 1
  end
end

local function lines_of(text)
  local t = {}
  for l in text:gmatch("[^\n]+") do
    l = l:match("^%s*(.-)%s*$")
    if l ~= "" then t[#t + 1] = l end
  end
  return t
end

describe("docs/TUTORIAL.md", function()
  it("has its programs and excerpts", function()
    assert.is_true(#programs >= 5, #programs)
    assert.is_true(#excerpts >= 3, #excerpts)
  end)

  for i, p in ipairs(programs) do
    it(("program %d prints what the page shows (virtual time)"):format(i), function()
      local out, code, _, err = support.run_lua('require("cfuture").time.pause()\n' .. p.code)
      assert.are.equal(0, code, err)
      assert.are.equal(p.out, out)
    end)
  end

  it("programs of under a second print the same in real time", function()
    if support.slow > 1 then return end -- output has timings: not under valgrind/sanitizers
    local ran = 0
    for _, p in ipairs(programs) do
      if not p.code:find("sleep%(1000%)") then
        local out, code, _, err = support.run_lua(p.code)
        assert.are.equal(0, code, err)
        assert.are.equal(p.out, out)
        ran = ran + 1
      end
    end
    assert.is_true(ran >= 3, ran)
  end)

  it("quotes examples/chat.lua as it is", function()
    local chat = lines_of(support.read_file("examples/chat.lua"))
    local text = "\n" .. table.concat(chat, "\n") .. "\n"
    for _, ex in ipairs(excerpts) do
      local want = "\n" .. table.concat(lines_of(ex), "\n") .. "\n"
      assert.is_truthy(text:find(want, 1, true), "not in examples/chat.lua:\n" .. ex)
    end
  end)
end)
