-- Add one batch's usage for one day/key/model to its counters, once per batch: a batch
-- retried after a lost reply, or replayed from the spool, finds its seen marker.
-- KEYS: the counters hash, the batch's seen marker (same hash tag).
-- ARGV: seen TTL seconds, then counter name and count pairs (requests, prompt_tokens, ...).
-- Every count is a non-negative integer, checked before anything is written.
local ttl = tonumber(ARGV[1])
if ttl == nil or ttl ~= math.floor(ttl) or ttl < 1 or ttl > 1e9 or #ARGV % 2 ~= 1 or #ARGV > 65 then
  return redis.error_reply('ERR llm-router argument: a TTL and name/count pairs expected')
end
for i = 3, #ARGV, 2 do
  local v = tonumber(ARGV[i])
  if v == nil or v ~= math.floor(v) or v < 0 or v > 1e15 or not string.match(ARGV[i - 1], '^[a-z_]+$') then
    return redis.error_reply('ERR llm-router argument: a count out of range')
  end
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] ~= '0' then
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
