-- Reconcile one admission: refund (or charge) the difference between the tokens
-- reserved and used, and release its concurrency slots. Idempotent: only the first
-- call for an admission finds its reservation key.
-- KEYS: the reservation key, then per scope (tpm bucket, concurrency zset).
-- ARGV: admission id, refund tokens (negative: used more than reserved), then per scope the tpm limit (0 = none).
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local refund = tonumber(ARGV[2])
for i = 0, (#KEYS - 1) / 2 - 1 do
  local limit = tonumber(ARGV[3 + i])
  local key = KEYS[2 + i * 2]
  if limit > 0 and refund ~= 0 then
    local rate = limit / 60000
    local stored = redis.call('HMGET', key, 'l', 't')
    local level = limit
    if stored[1] then
      level = math.min(limit, tonumber(stored[1]) + (now - tonumber(stored[2])) * rate)
    end
    level = math.min(limit, level + refund)
    redis.call('HSET', key, 'l', level, 't', now)
    redis.call('PEXPIRE', key, math.ceil((limit - level) / rate) + 1000)
  end
  redis.call('ZREM', KEYS[3 + i * 2], ARGV[1])
end
return 1
