--[[
apply_user_events.lua — one shard's events of a batch, applied atomically
(paper 000 Eq. 1–3 in closed form, DESIGN.md "Scores").

Users are spread over a fixed number of shards (crc32(user) mod S, streams/store.py); every key
of a user carries the shard's hash tag, so one call covers all the batch's users of a shard and
stays inside one Redis Cluster slot. Per user u (prefix P = "ss:{s<shard>}:" .. u):

  P:a       ZSET  item -> A(u,i) = sum_k w_k * exp(lambda * (t_k - r_u))
  P:meta    HASH  ref (r_u, epoch s), last_t, lat, lon
  P:beh     HASH  item -> strongest behaviour rank seen (0 view .. 3 purchase)
  P:last    HASH  item -> newest event time on the item (repeat-aware recall: recency)
  P:seen    ZSET  event_id -> event time (dedupe window)
  P:recent  LIST  most recent distinct items, newest first (co-visitation)

KEYS[1]  "ss:{s<shard>}:" — the shard's key prefix (declares the slot)
ARGV[1]  lambda per second          ARGV[2]  rebase bound (on lambda * (t - r_u))
ARGV[3]  max items kept per user    ARGV[4]  key TTL seconds
ARGV[5]  dedupe window seconds      ARGV[6]  recent items kept (co-visitation fan-out)
ARGV[7]  the events, in arrival order, packed into one string (one argument instead of seven
         per event keeps the client's packing cost low): records separated by \30 (RS), fields
         by \31 (US): user_id, event_id, item_id, weight, behaviour rank, t (epoch s),
         location ("lat,lon" or ""). Identifiers never contain control characters (the
         contract refuses them).

Returns  a flat array, per event: status (1 applied, 0 duplicate), then the recent items of
         the user before this event joined by \31 ("" for a duplicate), from which the caller
         updates the global co-visitation counts.

Rules (the pure-Python twin is streams/decay.py:DecayedScores; a test holds them equal):
- duplicate event_id inside the dedupe window -> nothing changes;
- first event sets r_u = t; when lambda * (t - r_u) > bound the user is rebased once:
  every A multiplied by exp(-lambda * (t - r_u)), r_u = t;
- A(u,i) += w * exp(lambda * (t - r_u))  (one ZINCRBY; no other score touched);
- the set keeps the strongest N (ties: lowest member first out, as ZREMRANGEBYRANK does);
- the newest event time per item is kept beside the behaviour (dropped with it by the cap);
- every key of a touched user gets the TTL.
]]

local lam = tonumber(ARGV[1])
local bound = tonumber(ARGV[2])
local max_items = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local keep_recent = tonumber(ARGV[6])
local SUFFIXES = {':a', ':meta', ':beh', ':last', ':seen', ':recent'}

local function split(text, sep)
  local parts = {}
  for part in string.gmatch(text, '([^' .. sep .. ']+)') do parts[#parts + 1] = part end
  return parts
end
local function fmt(x) return string.format('%.17g', x) end

local users = {}   -- user -> {keys, ref, last_t, touched}
local order = {}
local out = {}

for _, record in ipairs(split(ARGV[7], '\30')) do
  local f = split(record, '\31')
  local user, event_id, item = f[1], f[2], f[3]
  local weight, rank, t = tonumber(f[4]), tonumber(f[5]), tonumber(f[6])
  local location = f[7] or ''
  local u = users[user]
  if u == nil then
    local prefix = KEYS[1] .. user
    u = {a = prefix .. ':a', meta = prefix .. ':meta', beh = prefix .. ':beh',
         last = prefix .. ':last', seen = prefix .. ':seen', recent = prefix .. ':recent', prefix = prefix}
    u.ref = tonumber(redis.call('HGET', u.meta, 'ref'))
    u.last_t = tonumber(redis.call('HGET', u.meta, 'last_t'))
    users[user] = u
  end

  if redis.call('ZSCORE', u.seen, event_id) then
    out[#out + 1] = 0
    out[#out + 1] = ''
  else
    if not u.touched then
      u.touched = true
      order[#order + 1] = u
    end
    redis.call('ZADD', u.seen, t, event_id)
    if u.ref == nil then
      u.ref = t
      redis.call('HSET', u.meta, 'ref', fmt(t))
    elseif lam * (t - u.ref) > bound then
      local factor = math.exp(-lam * (t - u.ref))
      local all = redis.call('ZRANGE', u.a, 0, -1, 'WITHSCORES')
      for j = 1, #all, 2 do
        redis.call('ZADD', u.a, fmt(tonumber(all[j + 1]) * factor), all[j])
      end
      u.ref = t
      redis.call('HSET', u.meta, 'ref', fmt(t))
    end
    redis.call('ZINCRBY', u.a, fmt(weight * math.exp(lam * (t - u.ref))), item)
    local previous = tonumber(redis.call('HGET', u.beh, item))
    if previous == nil or rank > previous then
      redis.call('HSET', u.beh, item, rank)
    end
    local touched_at = tonumber(redis.call('HGET', u.last, item))
    if touched_at == nil or t > touched_at then
      redis.call('HSET', u.last, item, fmt(t))
    end
    local card = redis.call('ZCARD', u.a)
    if card > max_items then
      local dropped = redis.call('ZRANGE', u.a, 0, card - max_items - 1)
      redis.call('ZREMRANGEBYRANK', u.a, 0, card - max_items - 1)
      redis.call('HDEL', u.beh, unpack(dropped))
      redis.call('HDEL', u.last, unpack(dropped))
    end
    -- co-visitation partners: the recent items before this one (newest first), then
    -- move this item to the front of the recent list
    local recent = redis.call('LRANGE', u.recent, 0, keep_recent - 1)
    local partners = {}
    for _, other in ipairs(recent) do
      if other ~= item then partners[#partners + 1] = other end
    end
    redis.call('LREM', u.recent, 0, item)
    redis.call('LPUSH', u.recent, item)
    redis.call('LTRIM', u.recent, 0, keep_recent - 1)
    if u.last_t == nil or t > u.last_t then
      u.last_t = t
      redis.call('HSET', u.meta, 'last_t', fmt(t))
      if location ~= '' then
        local comma = string.find(location, ',', 1, true)
        redis.call('HSET', u.meta, 'lat', string.sub(location, 1, comma - 1),
                   'lon', string.sub(location, comma + 1))
      end
    end
    out[#out + 1] = 1
    out[#out + 1] = table.concat(partners, '\31')
  end
end

for _, u in ipairs(order) do
  -- the dedupe window is measured in event time, from the newest event seen
  redis.call('ZREMRANGEBYSCORE', u.seen, '-inf', '(' .. fmt(u.last_t - window))
  for _, suffix in ipairs(SUFFIXES) do redis.call('EXPIRE', u.prefix .. suffix, ttl) end
end
return out
