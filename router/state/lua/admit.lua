-- Admit one request against every limit it touches, all or nothing, on Redis's clock.
-- Same arithmetic as router/limits.py LocalLimiter: per scope and kind a bucket of
-- `limit` units refilled continuously at limit/60 s; a bucket is a hash {l: level, t: ms}.
-- KEYS: per scope (rpm bucket, tpm bucket, concurrency zset), then the reservation key.
-- ARGV: tokens, admission id, lease ms, then per scope (rpm, tpm, concurrency) limits, 0 = none.
-- Returns {allowed, refused scope index, refused kind (1 rpm, 2 tpm, 3 concurrency),
--          retry after ms, rpm limit, rpm remaining, rpm reset ms, tpm limit, tpm remaining, tpm reset ms}
-- (limit -1: no such limit on this request).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tokens = tonumber(ARGV[1])
local id = ARGV[2]
local lease = tonumber(ARGV[3])
local scopes = (#KEYS - 1) / 3
local taken = {}
local best = {{-1, 0, 0}, {-1, 0, 0}}

local function verdict(allowed, scope, kind, retry)
  return {allowed, scope, kind, math.ceil(retry), best[1][1], math.floor(best[1][2]), math.ceil(best[1][3]),
          best[2][1], math.floor(best[2][2]), math.ceil(best[2][3])}
end

for i = 0, scopes - 1 do
  for kind = 1, 2 do
    local limit = tonumber(ARGV[4 + i * 3 + kind - 1])
    if limit > 0 then
      local key = KEYS[i * 3 + kind]
      local rate = limit / 60000
      local cost = kind == 1 and 1 or tokens
      local stored = redis.call('HMGET', key, 'l', 't')
      local level = limit
      if stored[1] then
        level = math.min(limit, tonumber(stored[1]) + (now - tonumber(stored[2])) * rate)
      end
      local need = math.min(cost, limit)
      if level < need then
        best[kind] = {limit, math.max(0, level), (limit - level) / rate}  -- the refusing bucket's headers
        return verdict(0, i, kind, (need - level) / rate)
      end
      local remaining = level - cost
      taken[#taken + 1] = {key, remaining, (limit - remaining) / rate}
      if best[kind][1] < 0 or remaining < best[kind][2] then
        best[kind] = {limit, remaining, (limit - remaining) / rate}
      end
    end
  end
  local concurrency = tonumber(ARGV[4 + i * 3 + 2])
  if concurrency > 0 then
    local key = KEYS[i * 3 + 3]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)  -- leases of replicas that died mid-request
    if redis.call('ZCARD', key) >= concurrency then
      return verdict(0, i, 3, 1000)
    end
  end
end

local reserve = false
for _, bucket in ipairs(taken) do
  redis.call('HSET', bucket[1], 'l', bucket[2], 't', now)
  redis.call('PEXPIRE', bucket[1], math.ceil(bucket[3]) + 1000)
end
for i = 0, scopes - 1 do
  if tonumber(ARGV[4 + i * 3 + 2]) > 0 then
    redis.call('ZADD', KEYS[i * 3 + 3], now + lease, id)
    redis.call('PEXPIRE', KEYS[i * 3 + 3], lease + 1000)
    reserve = true
  end
  if tonumber(ARGV[4 + i * 3 + 1]) > 0 then
    reserve = true
  end
end
if reserve then
  redis.call('SET', KEYS[#KEYS], tokens, 'PX', lease)
end
return verdict(1, -1, 0, 0)
