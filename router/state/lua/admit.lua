-- Admit one request against every limit it touches, all or nothing, on Redis's clock.
-- Same arithmetic as router/limits.py LocalLimiter: per scope and kind a bucket of
-- `limit` units refilled continuously at limit/60 s; a bucket is a hash {l: level, t: ms}.
-- A request is charged at most a whole bucket, so an admission never takes a bucket
-- below 0 and a bucket's TTL is at most the time it takes to refill.
-- KEYS: per scope (rpm bucket, tpm bucket, concurrency zset), then the reservation key.
-- ARGV: tokens, admission id, lease ms, lease renewal ms, then per scope (rpm, tpm,
-- concurrency) limits, 0 = none. Every number is an integer in range, checked before
-- anything is written: a bad argument is an error reply and nothing changes.
-- Returns {allowed, refused scope index, refused kind (1 rpm, 2 tpm, 3 concurrency),
--          retry after ms, rpm limit, rpm remaining, rpm reset ms, tpm limit, tpm remaining, tpm reset ms}
-- (limit -1: no such limit on this request).
local MAX_UNITS = 1e12  -- tokens, limits; far below 2^53, so every value stays an exact integer
local MAX_LEASE = 3600000

local function int_arg(i, max)
  local v = tonumber(ARGV[i])
  if v == nil or v ~= math.floor(v) or v < 0 or v > max then
    return nil
  end
  return v
end

local scopes = (#KEYS - 1) / 3
if scopes < 1 or scopes ~= math.floor(scopes) or #ARGV ~= 4 + scopes * 3 then
  return redis.error_reply('ERR llm-router argument: wrong number of keys or arguments')
end
local tokens = int_arg(1, MAX_UNITS)
local lease = int_arg(3, MAX_LEASE)
local renew = int_arg(4, MAX_LEASE)
if tokens == nil or lease == nil or lease < 1 or renew == nil or renew > lease then
  return redis.error_reply('ERR llm-router argument: tokens, lease or renewal out of range')
end
local id = ARGV[2]
local limits = {}
for i = 5, #ARGV do
  limits[i - 4] = int_arg(i, MAX_UNITS)
  if limits[i - 4] == nil then
    return redis.error_reply('ERR llm-router argument: a limit out of range')
  end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local taken = {}
local best = {{-1, 0, 0}, {-1, 0, 0}}

local function verdict(allowed, scope, kind, retry)
  return {allowed, scope, kind, math.ceil(retry), best[1][1], math.floor(best[1][2]), math.ceil(best[1][3]),
          best[2][1], math.floor(best[2][2]), math.ceil(best[2][3])}
end

-- A bucket's stored level, refilled to now; anything unreadable counts as full.
local function level_of(key, limit, rate)
  local stored = redis.call('HMGET', key, 'l', 't')
  local level, stamp = tonumber(stored[1]), tonumber(stored[2])
  if level == nil or stamp == nil or level ~= level then
    return limit
  end
  return math.max(-limit * 60, math.min(limit, level + math.max(0, now - stamp) * rate))
end

for i = 0, scopes - 1 do
  for kind = 1, 2 do
    local limit = limits[i * 3 + kind]
    if limit > 0 then
      local key = KEYS[i * 3 + kind]
      local rate = limit / 60000
      local cost = kind == 1 and 1 or math.min(tokens, limit)
      local level = level_of(key, limit, rate)
      if level < cost then
        best[kind] = {limit, math.max(0, level), (limit - level) / rate}  -- the refusing bucket's headers
        return verdict(0, i, kind, (cost - level) / rate)
      end
      local remaining = level - cost
      taken[#taken + 1] = {key, remaining, (limit - remaining) / rate}
      if best[kind][1] < 0 or remaining < best[kind][2] then
        best[kind] = {limit, remaining, (limit - remaining) / rate}
      end
    end
  end
  local concurrency = limits[i * 3 + 3]
  if concurrency > 0 then
    local key = KEYS[i * 3 + 3]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)  -- leases of replicas that died mid-request
    if redis.call('ZCARD', key) >= concurrency then
      -- A live holder renews its lease every `renew` ms; one that missed two renewals is
      -- gone, and its slot is free when its lease runs out. Otherwise a slot frees when
      -- a request ends, which nothing here can tell: retry in a second.
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      local left = tonumber(first[2]) - now
      return verdict(0, i, 3, left < lease - 2 * renew and left or 1000)
    end
  end
end

-- Every check passed: write. Each TTL is an integer (formatted as one) of at most the
-- time the bucket takes to refill (a level stays within [-60 limit, limit]: 61 minutes),
-- so no write below can fail and leave a key without its TTL.
local function ms(value)
  return string.format('%d', math.ceil(value))
end
for _, bucket in ipairs(taken) do
  redis.call('HSET', bucket[1], 'l', bucket[2], 't', now)
  redis.call('PEXPIRE', bucket[1], ms(bucket[3] + 1000))
end
local reserve = false
for i = 0, scopes - 1 do
  if limits[i * 3 + 3] > 0 then
    redis.call('ZADD', KEYS[i * 3 + 3], ms(now + lease), id)
    redis.call('PEXPIRE', KEYS[i * 3 + 3], ms(lease + 1000))
    reserve = true
  end
  if limits[i * 3 + 2] > 0 then
    reserve = true
  end
end
if reserve then
  redis.call('SET', KEYS[#KEYS], ms(tokens), 'PX', ms(lease))
end
return verdict(1, -1, 0, 0)
