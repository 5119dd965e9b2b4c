--[[
apply_global_events.lua — global time-decayed counters for a batch of applied events.

Item popularity (trends, paper 002 §3.3) and item-item co-visitation use the same closed form as
the user scores, with one reference R per global shard instead of a per-user one:
    P(i)   = sum_k w_k * exp(lambda * (t_k - R))        popularity at T = P(i) * exp(-lambda (T - R))
    C(i,j) = sum over co-visits of w * exp(lambda * (t - R))
The counters are spread over global shards by item (crc32(item) mod G, streams/store.py): one
call per shard a batch touches on Redis Cluster (every key of a call carrying the shard's hash
tag {g<k>}, so the shards spread over its slots), one call for all of them on a single Redis. Each shard keeps its own
reference R; readers bring shards to a common time.

KEYS     four per shard of the call, in this order:
KEYS[1]  ss:{g<k>}:pop      ZSET  item -> P(i)       (items of shard k)
KEYS[2]  ss:{g<k>}:meta     HASH  ref (R of shard k)
KEYS[3]  ss:{g<k>}:cvkeys   SET   items of shard k with a co-visitation row (for the rare rebase)
KEYS[4]  ss:{g<k>}:applied  ZSET  pending-entry id -> when shard k counted it (a retry: no-op)

ARGV[1]  lambda per second     ARGV[2]  rebase bound      ARGV[3]  co-visitation set cap
ARGV[4]  key TTL seconds
ARGV[5]  each shard's co-visitation key prefix (e.g. "ss:{g3}:cv:"), separated by \31
ARGV[6]  "now" (epoch s) or "" for the server clock
ARGV[7]  seconds an entry id stays in KEYS[4] at most (the dedupe window)
ARGV[8]  entry ids to forget now, separated by \31 (their entries were deleted a while ago)
ARGV[9]  how many triples each shard has, separated by \31 (shard order)
ARGV[10], ARGV[11], ARGV[12], ...  each shard's triples in turn, one per pending entry (apply_user_events.lua writes
         them atomically with the user updates) with records for shard k: entry id, popularity
         records packed in one string (records separated by \30, fields by \31: item, weight,
         t; items of shard k), directed co-visitation records packed the same way (item a,
         item b, weight, t; adds to C(a,b) only, a of shard k: the caller sends C(b,a) to b's
         shard). An entry whose id is in KEYS[4] was counted on shard k before and is skipped,
         so the counters are exact when a caller dies between the scripts (or between the
         shards) and a later one counts its entries again.

then, on a single Redis only (the keys span slots), the counted entries' release:
KEYS     after the shards' keys, "ss:{s<shard>}:pending" of each user shard with entries
ARGV     after the triples, one per such key: the entry ids to delete there, separated by \31
         (counting and deleting in one atomic step; on Redis Cluster the caller deletes them
         with release_pending.lua once every shard has counted them)

Returns  each shard's R after the update (as strings).
]]

local lam = tonumber(ARGV[1])
local bound = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])

local function fmt(x) return string.format('%.17g', x) end
local function split(text, sep)
  local parts = {}
  for part in string.gmatch(text, '([^' .. sep .. ']+)') do parts[#parts + 1] = part end
  return parts
end
local function records(text)
  local out = {}
  for _, record in ipairs(split(text, '\30')) do out[#out + 1] = split(record, '\31') end
  return out
end
local now = tonumber(ARGV[6])
if now == nil then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
end
local forget = split(ARGV[8], '\31')

-- at most this many members per ZREM / ZMSCORE / ZADD (unpack's stack limit)
local CHUNK = 1000
local now_text = fmt(now)

-- one shard: KEYS are its four keys, its triples are ARGV[first .. last]; the applied set is
-- read and written with one command per CHUNK ids rather than per id
local function count_shard(KEYS, prefix, first, last)
  local popularity, covisits = {}, {}
  for from = 1, #forget, CHUNK do
    redis.call('ZREM', KEYS[4], unpack(forget, from, math.min(from + CHUNK - 1, #forget)))
  end
  local ids = {}
  for j = first, last, 3 do ids[#ids + 1] = ARGV[j] end
  local counted = {}
  for from = 1, #ids, CHUNK do
    local to = math.min(from + CHUNK - 1, #ids)
    for k, score in ipairs(redis.call('ZMSCORE', KEYS[4], unpack(ids, from, to))) do
      counted[from + k - 1] = score
    end
  end
  local fresh = {}
  for k = 1, #ids do
    local j = first + 3 * (k - 1)
    -- an id twice in one call is counted once, as one ZSCORE/ZADD per id did
    if not counted[k] and not fresh[ids[k]] then
      fresh[ids[k]] = true
      fresh[#fresh + 1] = ids[k]
      for _, f in ipairs(records(ARGV[j + 1])) do popularity[#popularity + 1] = f end
      for _, f in ipairs(records(ARGV[j + 2])) do covisits[#covisits + 1] = f end
    end
  end
  for from = 1, #fresh, CHUNK do
    local args = {}
    for k = from, math.min(from + CHUNK - 1, #fresh) do
      args[#args + 1] = now_text
      args[#args + 1] = fresh[k]
    end
    redis.call('ZADD', KEYS[4], unpack(args))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. fmt(now - tonumber(ARGV[7])))
  redis.call('EXPIRE', KEYS[4], math.max(ttl, math.ceil(tonumber(ARGV[7]))))

  local ref = tonumber(redis.call('HGET', KEYS[2], 'ref'))
  local newest = nil
  for _, f in ipairs(popularity) do
    local t = tonumber(f[3])
    if newest == nil or t > newest then newest = t end
  end
  for _, f in ipairs(covisits) do
    local t = tonumber(f[4])
    if newest == nil or t > newest then newest = t end
  end
  if newest == nil then return fmt(ref or 0) end


  if ref == nil then
    ref = newest
    redis.call('HSET', KEYS[2], 'ref', fmt(ref))
  elseif lam * (newest - ref) > bound then
    local factor = math.exp(-lam * (newest - ref))
    local function rescale(key)
      local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
      for j = 1, #all, 2 do
        redis.call('ZADD', key, fmt(tonumber(all[j + 1]) * factor), all[j])
      end
    end
    rescale(KEYS[1])
    for _, item in ipairs(redis.call('SMEMBERS', KEYS[3])) do rescale(prefix .. item) end
    ref = newest
    redis.call('HSET', KEYS[2], 'ref', fmt(ref))
  end

  -- The batch's increments are summed per member first, so a popular item (or pair) costs one
  -- ZINCRBY per batch instead of one per event: the same sums, up to floating-point rounding.
  local pop_inc, pop_order = {}, {}
  for _, f in ipairs(popularity) do
    local item = f[1]
    local inc = tonumber(f[2]) * math.exp(lam * (tonumber(f[3]) - ref))
    if pop_inc[item] == nil then
      pop_order[#pop_order + 1] = item
      pop_inc[item] = inc
    else
      pop_inc[item] = pop_inc[item] + inc
    end
  end
  for _, item in ipairs(pop_order) do
    redis.call('ZINCRBY', KEYS[1], fmt(pop_inc[item]), item)
  end

  local cv, touched = {}, {}   -- cv[a][b]: summed increment of C(a,b); touched: keys in order
  local function add(a, b, inc)
    local row = cv[a]
    if row == nil then
      row = {members = {}, inc = {}}
      cv[a] = row
      touched[#touched + 1] = a
    end
    if row.inc[b] == nil then
      row.members[#row.members + 1] = b
      row.inc[b] = inc
    else
      row.inc[b] = row.inc[b] + inc
    end
  end
  for _, f in ipairs(covisits) do
    local inc = tonumber(f[3]) * math.exp(lam * (tonumber(f[4]) - ref))
    add(f[1], f[2], inc)
  end
  for _, item in ipairs(touched) do
    local key = prefix .. item
    local row = cv[item]
    for _, other in ipairs(row.members) do
      redis.call('ZINCRBY', key, fmt(row.inc[other]), other)
    end
    redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
    redis.call('EXPIRE', key, ttl)
    redis.call('SADD', KEYS[3], item)
  end
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
  return fmt(ref)
end

local prefixes, counts = split(ARGV[5], '\31'), split(ARGV[9], '\31')
local refs, first = {}, 10
for k, prefix in ipairs(prefixes) do
  local last = first + 3 * tonumber(counts[k]) - 1
  refs[k] = count_shard({KEYS[4 * k - 3], KEYS[4 * k - 2], KEYS[4 * k - 1], KEYS[4 * k]},
                        prefix, first, last)
  first = last + 1
end
for j = 4 * #prefixes + 1, #KEYS do
  local ids = split(ARGV[first], '\31')
  if #ids > 0 then redis.call('HDEL', KEYS[j], unpack(ids)) end
  first = first + 1
end
return refs
