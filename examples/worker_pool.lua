-- A worker pool: a bounded job queue feeds N workers; results are gathered
-- in job order; closing the queue shuts the workers down.
-- Run: lua5.4 examples/worker_pool.lua [jobs] [workers]
local cf = require "cfuture"

local JOBS = tonumber(arg and arg[1]) or 20
local WORKERS = tonumber(arg and arg[2]) or 4

-- the "work": a job takes a while (simulated I/O) and produces a value
local function process(job)
  cf.sleep(10 + (job * 7) % 20):await()
  return job * job
end

local results = cf.block_on(cf.scope(function(s)
  local jobs = cf.channel(WORKERS * 2)   -- bounded: the producer waits when workers lag
  local done = cf.channel()              -- (job, result) pairs, in completion order

  for w = 1, WORKERS do
    s:spawn { function()
      for _, job in jobs:iter() do       -- ends when the queue is closed and drained
        done:send({ job, process(job) })
      end
    end, name = "worker " .. w }
  end

  s:spawn { function()
    for job = 1, JOBS do jobs:send(job):await() end
    jobs:close()
  end, name = "producer" }

  -- gather: results arrive out of order; put them back in job order
  local results = {}
  for _ = 1, JOBS do
    local pair = done:recv():await()
    results[pair[1]] = pair[2]
  end
  return results
end))

for job = 1, JOBS do io.write(("%d:%d "):format(job, results[job])) end
print()
print(("%d jobs on %d workers, results in order"):format(JOBS, WORKERS))
