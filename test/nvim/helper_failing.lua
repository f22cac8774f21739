-- Run by helper.sh: cfuture.nvim.test must report these as failed.
local T = require "cfuture.nvim.test"
local cf = require("cfuture.nvim").cf
T.run({
  { "passes", function() T.eq({ 1, { 2 } }, { 1, { 2 } }) end },
  { "fails an assertion", function() T.eq(1, 2, "numbers") end },
  { "hangs", function() cf.sleep(60000):await() end },
  { "raises after an await", function() cf.sleep(5):await(); error("late failure") end },
  { "still runs after the others", function() end },
  { "returns nil, \"timeout\" (not a time-out)", function() return nil, "timeout" end },
}, { timeout = 300 })
