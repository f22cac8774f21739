-- The Lua side of game_loop.c: tasks that animate a sprite with cf.sleep
-- and load a level file in the background while the C loop runs frames.
local cf = require "cfuture.core"

local sprite = { x = 0, moves = 0 }
local level -- loaded asynchronously

cf.spawn { function()
  for _ = 1, 20 do -- move every 50 ms: 1 s in all
    sprite.x = sprite.x + 5
    sprite.moves = sprite.moves + 1
    cf.sleep(50):await()
  end
end, name = "animate" }

cf.spawn { function()
  local path = os.tmpname()
  assert(cf.fs.write_file(path, ("tile "):rep(10000)):await())
  level = assert(cf.fs.read_file(path):await())
  cf.fs.unlink(path):await()
end, name = "load level" }

function report()
  print(("sprite moved %d times to x=%d; level %s"):format(sprite.moves, sprite.x,
    level and #level .. " bytes" or "not loaded"))
  return sprite.moves == 20 and level and #level == 50000
end
