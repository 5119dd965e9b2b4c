--[[
release_pending.lua — delete counted pending entries from their user shards' hashes, all shards
of a batch in one call (a single Redis; on Redis Cluster the store sends one HDEL per shard).

KEYS     "ss:{s<shard>}:pending" of each shard
ARGV[k]  the entry ids to delete from KEYS[k], separated by \31

Returns  how many entries were deleted.
]]

local deleted = 0
for k, key in ipairs(KEYS) do
  local ids = {}
  for id in string.gmatch(ARGV[k], '([^\31]+)') do ids[#ids + 1] = id end
  if #ids > 0 then deleted = deleted + redis.call('HDEL', key, unpack(ids)) end
end
return deleted
