"""Lua scripts run by Redis. The same algorithms as proxy/limits/memory.py, in milliseconds.

Each call carries a batch of requests (concurrent requests of one process are sent together:
one round trip for many), processed one after the other, each all-or-nothing, so a batch
behaves exactly like the same requests sent one by one.

ARGV: for each request two values: its member id (names its concurrency slots) and a spec
string "now_ms kind amount param cost-or-delta kind amount param ..." with one quadruple per key.
KEYS: the keys of every request, in order. kind: r (rate), b (budget), c (concurrency).
param: rates the window (ms), budgets the window end (epoch ms), concurrency the lease (ms).
Every key written gets an expiry relative to the caller's clock (expiries follow the injected
clock, not Redis's), so abandoned counters vanish.
"""

_PARSE = r"""
local function parse(spec)
  local t = {}
  for tok in string.gmatch(spec, '%S+') do t[#t + 1] = tok end
  return t
end
"""

RESERVE = _PARSE + r"""
local out = {}
local base = 0
for r = 1, #ARGV, 2 do
  local member = ARGV[r]
  local spec = parse(ARGV[r + 1])
  local now = tonumber(spec[1])
  local n = (#spec - 1) / 4
  local head = #out + 1
  out[head] = 1
  local plan = {}
  local ok = true
  for i = 1, n do
    local s = 1 + (i - 1) * 4
    local kind = spec[s + 1]
    local amount = tonumber(spec[s + 2])
    local param = tonumber(spec[s + 3])
    local cost = tonumber(spec[s + 4])
    local key = KEYS[base + i]
    local allowed, remaining, reset, retry = 1, 0, 0, 0
    if kind == 'b' then
      local used = tonumber(redis.call('GET', key) or '0')
      local left = amount - used
      reset = param - now
      if cost > left then
        allowed = 0
        remaining = math.max(0, left)
        if cost > amount then retry = -1 else retry = reset end
      else
        remaining = left - cost
        plan[i] = cost
      end
    elseif kind == 'c' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      local count = redis.call('ZCARD', key)
      if count >= amount then
        allowed = 0
        retry = 1000
      else
        remaining = amount - count - 1
        plan[i] = now + param
      end
    else
      local interval = param / amount
      local tat = tonumber(redis.call('GET', key) or '0')
      if tat < now then tat = now end
      local new_tat = tat + cost * interval
      if cost > amount or new_tat - param > now then
        allowed = 0
        remaining = math.max(0, math.floor((param - (tat - now)) / interval + 0.01))
        reset = tat - now
        if cost > amount then retry = -1 else retry = new_tat - param - now end
      else
        remaining = math.max(0, math.floor((param - (new_tat - now)) / interval + 0.01))
        reset = new_tat - now
        plan[i] = new_tat
      end
    end
    if allowed == 0 then ok = false end
    out[#out + 1] = allowed
    out[#out + 1] = remaining
    out[#out + 1] = math.ceil(reset)
    if retry < 0 then out[#out + 1] = -1 else out[#out + 1] = math.ceil(retry) end
  end
  if ok then
    for i = 1, n do
      local s = 1 + (i - 1) * 4
      local kind = spec[s + 1]
      local param = tonumber(spec[s + 3])
      local key = KEYS[base + i]
      local v = plan[i]
      if kind == 'b' then
        redis.call('INCRBY', key, v)
        redis.call('PEXPIRE', key, math.max(1, math.ceil(param - now)) + 60000)
      elseif kind == 'c' then
        redis.call('ZADD', key, v, member)
        redis.call('PEXPIRE', key, math.ceil(param) + 1000)
      else
        redis.call('SET', key, string.format('%.3f', v), 'PX', math.ceil(v - now) + 1000)
      end
    end
  else
    out[head] = 0
  end
  base = base + n
end
-- One string instead of an array: the client parses it with one split, not element by element.
for i = 1, #out do out[i] = string.format('%.0f', out[i]) end
return table.concat(out, ' ')
"""

SETTLE = _PARSE + r"""
local base = 0
for r = 1, #ARGV, 2 do
  local member = ARGV[r]
  local spec = parse(ARGV[r + 1])
  local now = tonumber(spec[1])
  local n = (#spec - 1) / 4
  for i = 1, n do
    local s = 1 + (i - 1) * 4
    local kind = spec[s + 1]
    local amount = tonumber(spec[s + 2])
    local param = tonumber(spec[s + 3])
    local delta = tonumber(spec[s + 4])
    local key = KEYS[base + i]
    if kind == 'c' then
      redis.call('ZREM', key, member)
    elseif delta ~= 0 then
      if kind == 'b' then
        local v = redis.call('INCRBY', key, delta)
        if v < 0 then redis.call('SET', key, 0) end
        redis.call('PEXPIRE', key, math.max(1, math.ceil(param - now)) + 60000)
      else
        local interval = param / amount
        local stored = redis.call('GET', key)
        local tat = tonumber(stored or '0')
        local new_tat = nil
        if delta > 0 then
          if tat < now then tat = now end
          new_tat = tat + delta * interval
        elseif stored and tat > now then
          new_tat = math.max(now, tat + delta * interval)
        end
        if new_tat then
          if new_tat > now then
            redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
          else
            redis.call('DEL', key)
          end
        end
      end
    end
  end
  base = base + n
end
return 1
"""
