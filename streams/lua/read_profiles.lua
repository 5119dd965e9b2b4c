--[[
read_profiles.lua — what the rerank worker reads about a shard's shoppers, in one call.

Read-only twin of apply_user_events.lua's key layout: for every user u given (prefix
P = KEYS[1] .. u) it returns, in order, four arrays:

  ZREVRANGE P:a 0 n-1 WITHSCORES   the strongest accumulators A(u,i), flat (item, A, ...)
  HGETALL   P:meta                 ref, last_t, lat, lon (flat field, value, ...)
  HGETALL   P:beh                  item -> strongest behaviour rank (flat)
  HGETALL   P:last                 item -> newest event time on the item (flat)

The caller (streams/store.py:ScoreStore.user_profiles) turns A into S(u,i,T). One call per shard
replaces three commands per user: the client's per-command cost, not Redis, dominated the read.

KEYS[1]  "ss:{s<shard>}:" — the shard's key prefix (declares the slot)
ARGV[1]  n, items per user        ARGV[2..]  user ids (all of this shard)
]]

local n = tonumber(ARGV[1])
local out = {}
for k = 2, #ARGV do
  local prefix = KEYS[1] .. ARGV[k]
  out[#out + 1] = redis.call('ZREVRANGE', prefix .. ':a', 0, n - 1, 'WITHSCORES')
  out[#out + 1] = redis.call('HGETALL', prefix .. ':meta')
  out[#out + 1] = redis.call('HGETALL', prefix .. ':beh')
  out[#out + 1] = redis.call('HGETALL', prefix .. ':last')
end
return out
