--[[
apply_user_events.lua — one shard's events of a batch, applied atomically
(paper 000 Eq. 1–3 in closed form, docs/design.md "Scores").

Users are spread over a fixed number of shards (crc32(user) mod S, streams/store.py); every key
of a user carries the shard's hash tag, so one call covers all the batch's users of a shard and
stays inside one Redis Cluster slot. Per user u (prefix P = "ss:{s<shard>}:" .. u):

  P:a       ZSET  item -> A(u,i) = sum_k w_k * exp(lambda * (t_k - r_u))
  P:meta    HASH  ref (r_u, epoch s), last_t, lat, lon
  P:beh     HASH  item -> strongest behaviour rank seen (0 view .. 3 purchase)
  P:last    HASH  item -> newest event time on the item (repeat-aware recall: recency)
  P:seen    ZSET  event_id -> ARRIVAL time (server or worker clock, not event time)
  P:recent  LIST  most recent distinct items, newest first (co-visitation)
and per shard (no user suffix, so it never collides with a user key):
  "ss:{s<shard>}:pending"  HASH  entry id -> "arrival \29 popularity records \29 co-visits"
         the global increments of applied events, written in the same atomic step as the user
         update and deleted by the caller once apply_global_events.lua has counted them

KEYS     "ss:{s<shard>}:" — the key prefix of each shard of the call (declares the slots): one
         on Redis Cluster (one slot per call), every shard of the batch on a single Redis (one
         call per batch)
ARGV[1]  lambda per second          ARGV[2]  rebase bound (on lambda * (t - r_u))
ARGV[3]  max items kept per user    ARGV[4]  key TTL seconds
ARGV[5]  dedupe window seconds      ARGV[6]  recent items kept (co-visitation fan-out)
ARGV[7]  each shard's events (in KEYS order, separated by \28 (FS); a shard may have none),
         in arrival order, packed into one string (one argument instead of seven
         per event keeps the client's packing cost low): records separated by \30 (RS), fields
         by \31 (US): user_id, event_id, item_id, weight, behaviour rank, t (epoch s),
         location ("lat,lon" or ""). Identifiers never contain control characters (the
         contract refuses them).
ARGV[8]  "now": arrival time in epoch seconds, or "" for the server clock (Redis TIME; the
         default: one clock for every worker)
ARGV[9]  most seen ids kept per user
ARGV[10] the call's pending-entry id base: a shard's entry id is ARGV[10] .. its prefix
ARGV[11] grace seconds: pending entries of the shard older than this (left by a caller that
         died before counting them) are returned too

Returns  one array per shard (in KEYS order), each flat: per event its status (1 applied, 0 duplicate), then the pending entries
         the caller must count globally, as (id, popularity records, co-visitation records)
         triples: this call's entry (when an event was applied) and any entry older than the
         grace period. Popularity records: item \31 weight \31 t; co-visitation records: item
         \31 partner \31 weight \31 t (the partners are the user's recent items before the
         event, newest first); records separated by \30.

Rules (the pure-Python twin is streams/decay.py:DecayedScores; a test holds them equal):
- an event_id seen for this user -> nothing changes. Seen ids are scored by ARRIVAL time and
  forgotten only when they arrived more than the dedupe window ago (processing time) or when the
  user holds more than the count cap (earliest arrivals first; ties: lowest member first): a
  redelivered event of any event-time age is a no-op and a late one applies exactly once;
- first event sets r_u = t; when lambda * (t - r_u) > bound the user is rebased once:
  every A multiplied by exp(-lambda * (t - r_u)), r_u = t;
- A(u,i) += w * exp(lambda * (t - r_u))  (one ZINCRBY; no other score touched);
- the set keeps the strongest N (ties: lowest member first out, as ZREMRANGEBYRANK does);
- the newest event time per item is kept beside the behaviour (dropped with it by the cap);
- every key of a touched user gets the TTL (the seen ids: at least the dedupe window).
]]

local lam = tonumber(ARGV[1])
local bound = tonumber(ARGV[2])
local max_items = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local keep_recent = tonumber(ARGV[6])
local now = tonumber(ARGV[8])
if now == nil then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
end
local max_seen = tonumber(ARGV[9])
local entry_base = ARGV[10]
local grace = tonumber(ARGV[11])
local SUFFIXES = {':a', ':meta', ':beh', ':last', ':recent'}

local function split(text, sep)
  local parts = {}
  for part in string.gmatch(text, '([^' .. sep .. ']+)') do parts[#parts + 1] = part end
  return parts
end
local function fmt(x) return string.format('%.17g', x) end
local function split_keep(text, sep)  -- empty fields kept (a shard without events)
  local parts, from = {}, 1
  while true do
    local at = string.find(text, sep, from, true)
    if at == nil then parts[#parts + 1] = string.sub(text, from); return parts end
    parts[#parts + 1] = string.sub(text, from, at - 1)
    from = at + 1
  end
end
local now_text = fmt(now)

local function apply_shard(shard, packed, entry_id)
  local pending_key = shard .. 'pending'
  local users = {}   -- user -> {keys, ref, last_t, touched}
  local order = {}
  local out = {}
  local popularity, covisits = {}, {}

  for _, record in ipairs(split(packed, '\30')) do
    local f = split(record, '\31')
    local user, event_id, item = f[1], f[2], f[3]
    local weight, rank, t = tonumber(f[4]), tonumber(f[5]), tonumber(f[6])
    local location = f[7] or ''
    local u = users[user]
    if u == nil then
      local prefix = shard .. user
      u = {a = prefix .. ':a', meta = prefix .. ':meta', beh = prefix .. ':beh',
           last = prefix .. ':last', seen = prefix .. ':seen', recent = prefix .. ':recent', prefix = prefix}
      local meta = redis.call('HMGET', u.meta, 'ref', 'last_t')
      u.ref, u.last_t = tonumber(meta[1]), tonumber(meta[2])
      users[user] = u
    end

    -- one call both checks and records the id: NX adds it only if unseen (and then says 1)
    if redis.call('ZADD', u.seen, 'NX', now_text, event_id) == 0 then
      out[#out + 1] = 0
    else
      if not u.touched then
        u.touched = true
        order[#order + 1] = u
      end
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
      -- global increments: popularity of the item, co-visitation with the recent items before
      -- this one (newest first); then this item moves to the front of the recent list
      local tail = '\31' .. f[4] .. '\31' .. f[6]
      popularity[#popularity + 1] = item .. tail
      for _, other in ipairs(redis.call('LRANGE', u.recent, 0, keep_recent - 1)) do
        if other ~= item then covisits[#covisits + 1] = item .. '\31' .. other .. tail end
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
    end
  end

  for _, u in ipairs(order) do
    -- seen ids are forgotten by processing time (arrival), never by event time, and beyond the
    -- count cap earliest arrivals first
    redis.call('ZREMRANGEBYSCORE', u.seen, '-inf', '(' .. fmt(now - window))
    local card = redis.call('ZCARD', u.seen)
    if card > max_seen then redis.call('ZREMRANGEBYRANK', u.seen, 0, card - max_seen - 1) end
    redis.call('EXPIRE', u.seen, math.max(ttl, math.ceil(window)))
    for _, suffix in ipairs(SUFFIXES) do redis.call('EXPIRE', u.prefix .. suffix, ttl) end
  end

  -- the pending entries the caller must count: this call's (written atomically with the user
  -- updates above), then any left behind by a caller that died before counting them
  local pop_text, cv_text = table.concat(popularity, '\30'), table.concat(covisits, '\30')
  local leftovers = redis.call('HGETALL', pending_key)
  if #popularity > 0 then
    redis.call('HSET', pending_key, entry_id, now_text .. '\29' .. pop_text .. '\29' .. cv_text)
    out[#out + 1] = entry_id
    out[#out + 1] = pop_text
    out[#out + 1] = cv_text
  end
  for j = 1, #leftovers, 2 do
    local first = string.find(leftovers[j + 1], '\29', 1, true)
    if tonumber(string.sub(leftovers[j + 1], 1, first - 1)) < now - grace then
      local second = string.find(leftovers[j + 1], '\29', first + 1, true)
      out[#out + 1] = leftovers[j]
      out[#out + 1] = string.sub(leftovers[j + 1], first + 1, second - 1)
      out[#out + 1] = string.sub(leftovers[j + 1], second + 1)
    end
  end
  if #leftovers > 0 or #popularity > 0 then redis.call('EXPIRE', pending_key, ttl) end
  return out
end

local replies = {}
local packed_shards = split_keep(ARGV[7], '\28')
for k, shard in ipairs(KEYS) do
  replies[k] = apply_shard(shard, packed_shards[k] or '', entry_base .. shard)
end
return replies
