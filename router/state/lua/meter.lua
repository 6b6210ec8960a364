-- Add one batch's usage for one day/key/model to its counters, once per batch: a batch
-- retried after a lost reply, or replayed from the spool, finds its seen marker.
-- KEYS: the counters hash, the batch's seen marker (same hash tag).
-- ARGV: seen TTL seconds, requests, prompt, completion, total tokens, errors, estimated, cache read, cache write.
-- Every count is a non-negative integer, checked before anything is written.
for i = 1, 9 do
  local v = tonumber(ARGV[i] or 0)
  if v == nil or v ~= math.floor(v) or v < 0 or v > 1e15 or (i == 1 and v < 1) then
    return redis.error_reply('ERR llm-router argument: a count out of range')
  end
end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'requests', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'prompt_tokens', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'completion_tokens', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'total_tokens', ARGV[5])
redis.call('HINCRBY', KEYS[1], 'errors', ARGV[6])
redis.call('HINCRBY', KEYS[1], 'estimated', ARGV[7])
redis.call('HINCRBY', KEYS[1], 'cached_tokens', ARGV[8] or 0)
redis.call('HINCRBY', KEYS[1], 'cache_write_tokens', ARGV[9] or 0)
return 1
