-- Reconcile one admission: give back (or charge) the difference between what the
-- admission charged each token bucket (its reserved tokens, at most the whole bucket)
-- and the tokens used, and release its concurrency slots. Idempotent: only the first
-- call for an admission finds its reservation key, so a retry refunds nothing twice.
-- A level stays within [-60 limit, limit] (at most an hour of debt), so every TTL is
-- an integer of at most 61 minutes. Arguments are checked before anything is written.
-- KEYS: the reservation key, then per scope (tpm bucket, concurrency zset).
-- ARGV: admission id, reserved tokens, used tokens, then per scope the tpm limit (0 = none).
local MAX_UNITS = 1e12
local function int_arg(i)
  local v = tonumber(ARGV[i])
  if v == nil or v ~= math.floor(v) or v < 0 or v > MAX_UNITS then
    return nil
  end
  return v
end

local scopes = (#KEYS - 1) / 2
if scopes < 1 or scopes ~= math.floor(scopes) or #ARGV ~= 3 + scopes then
  return redis.error_reply('ERR llm-router argument: wrong number of keys or arguments')
end
for i = 2, #ARGV do
  if int_arg(i) == nil then
    return redis.error_reply('ERR llm-router argument: a count or limit out of range')
  end
end
local reserved, used = int_arg(2), int_arg(3)
local refund = redis.call('DEL', KEYS[1]) == 1
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 0, scopes - 1 do
  local limit = int_arg(4 + i)
  local key = KEYS[2 + i * 2]
  local charged = math.min(reserved, limit)
  if refund and limit > 0 and charged ~= used then
    local rate = limit / 60000
    local stored = redis.call('HMGET', key, 'l', 't')
    local level, stamp = tonumber(stored[1]), tonumber(stored[2])
    if level == nil or stamp == nil or level ~= level then
      level, stamp = limit, now
    end
    level = math.min(limit, level + math.max(0, now - stamp) * rate)
    level = math.max(-limit * 60, math.min(limit, level + charged - used))
    redis.call('HSET', key, 'l', level, 't', now)
    redis.call('PEXPIRE', key, string.format('%d', math.ceil((limit - level) / rate) + 1000))
  end
  redis.call('ZREM', KEYS[3 + i * 2], ARGV[1])
end
return refund and 1 or 0
