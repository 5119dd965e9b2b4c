--[[
read_recall.lua — the global recall sources of a micro-batch, in one call: the popularity
reference, the trending items and the co-visited items of every seed item.

One call per global shard (apply_global_events.lua): every key carries the shard's hash tag
{g<k>}, so the script is valid on Redis Cluster. Scores are returned undecayed; the caller
applies exp(-lambda (T - R)) to popularity and merges the shards.

KEYS[1]  ss:{g<k>}:pop     ZSET  item -> P(i)
KEYS[2]  ss:{g<k>}:meta    HASH  ref (R of shard k)
ARGV[1]  co-visitation key prefix (e.g. "ss:{g3}:cv:")
ARGV[2]  co-visited items per seed      ARGV[3]  trending items
ARGV[4..] seed items (all of shard k)

Returns  { R or nil, ZREVRANGE pop 0 trending-1 WITHSCORES (flat),
           then per seed ZREVRANGE cv:seed 0 per_seed-1 WITHSCORES (flat) }
]]

local prefix = ARGV[1]
local per_seed = tonumber(ARGV[2])
local trending = tonumber(ARGV[3])
local out = {redis.call('HGET', KEYS[2], 'ref'),
             redis.call('ZREVRANGE', KEYS[1], 0, trending - 1, 'WITHSCORES')}
for k = 4, #ARGV do
  out[#out + 1] = redis.call('ZREVRANGE', prefix .. ARGV[k], 0, per_seed - 1, 'WITHSCORES')
end
return out
