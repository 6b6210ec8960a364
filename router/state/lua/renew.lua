-- Extend the leases of admissions still in flight on a live replica: its concurrency
-- slots (only where still held) and its reservation key. A replica that dies stops
-- renewing, and its slots are free once the lease runs out.
-- KEYS: per admission its reservation key and its concurrency zsets; ARGV: lease ms,
-- then per admission its id and how many zsets follow its reservation key.
local lease = tonumber(ARGV[1])
if lease == nil or lease ~= math.floor(lease) or lease < 1 or lease > 3600000 then
  return redis.error_reply('ERR llm-router argument: lease out of range')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local k = 1
for a = 2, #ARGV, 2 do
  local id, zsets = ARGV[a], tonumber(ARGV[a + 1])
  redis.call('PEXPIRE', KEYS[k], string.format('%d', lease))
  for z = k + 1, k + zsets do
    if redis.call('ZADD', KEYS[z], 'XX', 'CH', string.format('%d', now + lease), id) == 1 then
      redis.call('PEXPIRE', KEYS[z], string.format('%d', lease + 1000))
    end
  end
  k = k + 1 + zsets
end
return 1
