-- Add one request's usage to its day/key/model counters, once per request id.
-- KEYS: the counters hash, the request's seen marker (same hash tag).
-- ARGV: seen TTL seconds, requests, prompt, completion, total tokens, errors, estimated, cache read, cache write.
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
