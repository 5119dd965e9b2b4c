--[[
apply_user_events.lua — one shard's events of a batch, applied atomically
(paper 000 Eq. 1–3 in closed form, docs/design.md "Scores").

Users are spread over a fixed number of shards (crc32(user) mod S, streams/store.py); every key
of a user carries the shard's hash tag, so one call covers all the batch's users of a shard and
stays inside one Redis Cluster slot. Per user u (prefix P = "ss:{s<shard>}:" .. u):

  P:a       ZSET  item -> A(u,i) = sum_k w_k * exp(lambda * (t_k - r_u))
  P:meta    HASH  ref (r_u, epoch s), last_t, lat, lon, ttl_at (server time of the last TTL
                  refresh), n and sn (how many items P:a and ids P:seen hold: followed here so
                  that a call need not count them; only a hint, the real count is read before
                  anything is trimmed)
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
ARGV[12] TTL refresh interval seconds: a user's keys other than P:seen get their TTL again only
         when the last refresh (P:meta field ttl_at, Redis server clock) is at least this old, or
         when one of them was just created; P:seen gets its TTL on every call

Returns  one array per shard (in KEYS order), each flat: per event its status (1 applied, 0 duplicate), then the pending entries
         the caller must count globally, as (id, popularity records, co-visitation records)
         triples: this call's entry (when an event was applied) and any entry older than the
         grace period. Popularity records: item \31 weight \31 t; co-visitation records: item
         \31 partner \31 weight \31 t (the partners are the user's recent items before the
         event, newest first); records separated by \30. The records of one item (or one pair)
         in a call are summed into one: t is their newest event time and weight the sum of
         w_k * exp(lambda * (t_k - t)), which apply_global_events.lua counts exactly as it would
         count the records one by one (up to floating-point rounding).

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
- every key of a touched user gets the TTL (the seen ids: at least the dedupe window, on every
  call; the other keys when their last refresh is ARGV[12] seconds old or one was created, so
  they live at least TTL - ARGV[12] seconds after the user's last event).

Cost: each redis.call is a large part of the script's CPU, so a user's meta, behaviour, newest
time and recent items are read at most once per call, kept in Lua tables while the user's
events of the call are applied, and written back once per user at the end; the set's size is
read once per user (ZCARD) and followed from there (an item new to the user is new in P:a).
]]

local lam = tonumber(ARGV[1])
local bound = tonumber(ARGV[2])
local max_items = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local keep_recent = tonumber(ARGV[6])
local clock = redis.call('TIME')
local server_now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local now = tonumber(ARGV[8]) or server_now
local max_seen = tonumber(ARGV[9])
local entry_base = ARGV[10]
local grace = tonumber(ARGV[11])
local refresh_every = tonumber(ARGV[12])
local SUFFIXES = {':a', ':meta', ':beh', ':last', ':recent'}
local META_FIELDS = {'ref', 'last_t', 'lat', 'lon', 'ttl_at', 'n', 'sn'}

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
local seen_cutoff = '(' .. fmt(now - window)
-- one record of a shard's packed events: its seven fields (the location may be empty)
local FIELD = '([^\30\31]*)'
local RECORD = FIELD .. string.rep('\31' .. FIELD, 6)
local server_now_text = fmt(server_now)

-- increments of one call summed per member: sums[member] = {weight at t, t, text}, t the
-- newest; text: the record's "weight \31 t" as given while the member has one record
local function add_record(sums, order, member, weight, t, text)
  local s = sums[member]
  if s == nil then
    sums[member] = {weight, t, text}
    order[#order + 1] = member
    return
  end
  if t > s[2] then
    s[1] = s[1] * math.exp(lam * (s[2] - t)) + weight
    s[2] = t
  else
    s[1] = s[1] + weight * math.exp(lam * (t - s[2]))
  end
  s[3] = nil
end
local function packed_records(sums, order)
  local out = {}
  for k, member in ipairs(order) do
    local s = sums[member]
    out[k] = member .. '\31' .. (s[3] or (fmt(s[1]) .. '\31' .. fmt(s[2])))
  end
  return table.concat(out, '\30')
end

-- a field's value in a user's hash: read once (false when absent), then kept in `cache`
local function cached(cache, key, item)
  local value = cache[item]
  if value == nil then
    value = tonumber(redis.call('HGET', key, item)) or false
    cache[item] = value
  end
  return value
end

-- the user's pending hash writes (item -> value) as a flat HSET argument list
local function hash_args(cache, dirty, order)
  local args = {}
  for _, item in ipairs(order) do
    if dirty[item] and cache[item] then
      args[#args + 1] = item
      args[#args + 1] = dirty[item]
      dirty[item] = nil
    end
  end
  return args
end

local function new_user(shard, user)
  local prefix = shard .. user
  local u = {a = prefix .. ':a', meta = prefix .. ':meta', beh = prefix .. ':beh',
             last = prefix .. ':last', seen = prefix .. ':seen', recent = prefix .. ':recent',
             prefix = prefix, beh_of = {}, beh_dirty = {}, last_of = {}, last_dirty = {},
             items = {}, item_seen = {}, meta_set = {}}
  local meta = redis.call('HMGET', u.meta, 'ref', 'last_t', 'ttl_at', 'n', 'sn')
  u.ref, u.last_t, u.ttl_at = tonumber(meta[1]), tonumber(meta[2]), tonumber(meta[3])
  u.card, u.seen_n = tonumber(meta[4]), tonumber(meta[5])
  u.card_read, u.seen_read = u.card, u.seen_n
  return u
end

-- one applied event; w_text, rank_text, t_text: the fields as given (t_text: the shortest text
-- of the same double, so it is stored as given)
local function apply_event(u, item, w_text, rank_text, t_text, location, popularity, covisits)
  local weight, rank, t = tonumber(w_text), tonumber(rank_text), tonumber(t_text)
  if u.ref == nil then
    u.ref = t
    u.meta_set.ref = t_text
  elseif lam * (t - u.ref) > bound then
    local factor = math.exp(-lam * (t - u.ref))
    local all = redis.call('ZRANGE', u.a, 0, -1, 'WITHSCORES')
    for j = 1, #all, 2 do
      redis.call('ZADD', u.a, fmt(tonumber(all[j + 1]) * factor), all[j])
    end
    u.ref = t
    u.meta_set.ref = t_text
  end
  redis.call('ZINCRBY', u.a, fmt(weight * math.exp(lam * (t - u.ref))), item)
  local previous = cached(u.beh_of, u.beh, item)
  if not previous or rank > previous then
    u.beh_of[item] = rank
    u.beh_dirty[item] = rank_text
  end
  local touched_at = cached(u.last_of, u.last, item)
  if not touched_at or t > touched_at then
    u.last_of[item] = t
    u.last_dirty[item] = t_text
  end
  if not u.item_seen[item] then
    u.item_seen[item] = true
    u.items[#u.items + 1] = item
  end
  -- the set's size: followed in P:meta (read once per user when it is not there), one more for
  -- each item new to the user (an item without a behaviour is not in P:a: the cap drops both
  -- together); read for real before anything is dropped
  if u.card == nil then
    u.card = redis.call('ZCARD', u.a)
    if u.card == 1 then u.created = true end
  elseif not previous then
    u.card = u.card + 1
  end
  if u.card > max_items then
    local card = redis.call('ZCARD', u.a)
    if card > max_items then
      local dropped = redis.call('ZRANGE', u.a, 0, card - max_items - 1)
      redis.call('ZREMRANGEBYRANK', u.a, 0, card - max_items - 1)
      redis.call('HDEL', u.beh, unpack(dropped))
      redis.call('HDEL', u.last, unpack(dropped))
      for _, gone in ipairs(dropped) do
        u.beh_of[gone], u.beh_dirty[gone] = false, nil
        u.last_of[gone], u.last_dirty[gone] = false, nil
      end
      card = max_items
    end
    u.card = card
  end
  -- global increments: popularity of the item, co-visitation with the recent items before
  -- this one (newest first); then this item moves to the front of the recent list
  local tail = w_text .. '\31' .. t_text
  add_record(popularity.sums, popularity.order, item, weight, t, tail)
  if u.recent_items == nil then
    u.recent_items = redis.call('LRANGE', u.recent, 0, -1)
    u.recent_stored = #u.recent_items
  end
  local recent = u.recent_items
  for j = 1, math.min(#recent, keep_recent) do
    local other = recent[j]
    if other ~= item then
      add_record(covisits.sums, covisits.order, item .. '\31' .. other, weight, t, tail)
    end
  end
  local moved = {item}
  for _, other in ipairs(recent) do
    if #moved >= keep_recent then break end
    if other ~= item then moved[#moved + 1] = other end
  end
  u.recent_items = moved
  u.recent_changed = true
  if u.last_t == nil or t > u.last_t then
    u.last_t = t
    u.meta_set.last_t = t_text
    if location ~= '' then
      local comma = string.find(location, ',', 1, true)
      u.meta_set.lat = string.sub(location, 1, comma - 1)
      u.meta_set.lon = string.sub(location, comma + 1)
    end
  end
end

-- the user's state kept in Lua written back (once per user per call), seen ids trimmed, TTLs
local function finish_user(u)
  local beh_args = hash_args(u.beh_of, u.beh_dirty, u.items)
  if #beh_args > 0 then redis.call('HSET', u.beh, unpack(beh_args)) end
  local last_args = hash_args(u.last_of, u.last_dirty, u.items)
  if #last_args > 0 then redis.call('HSET', u.last, unpack(last_args)) end
  if u.recent_changed then
    -- push the new list behind the stored one, then keep only it: the key is never empty in
    -- between, so it keeps its TTL
    redis.call('RPUSH', u.recent, unpack(u.recent_items))
    if u.recent_stored > 0 then
      redis.call('LTRIM', u.recent, u.recent_stored, -1)
    else
      u.created = true
    end
  end
  -- seen ids are forgotten by processing time (arrival), never by event time, and beyond the
  -- count cap earliest arrivals first
  local removed = redis.call('ZREMRANGEBYSCORE', u.seen, '-inf', seen_cutoff)
  local card, exact = nil, false
  if u.seen_n ~= nil then card = u.seen_n - removed end
  if card == nil or card > max_seen then
    card, exact = redis.call('ZCARD', u.seen), true
  end
  if card > max_seen then
    redis.call('ZREMRANGEBYRANK', u.seen, 0, card - max_seen - 1)
    card = max_seen
  end
  if card ~= u.seen_read or exact then u.meta_set.sn = tostring(card) end
  if u.card ~= u.card_read then u.meta_set.n = tostring(u.card) end
  local refresh = u.created or u.ttl_at == nil or server_now - u.ttl_at >= refresh_every
  if refresh then u.meta_set.ttl_at = server_now_text end
  local meta_args = {}
  for _, field in ipairs(META_FIELDS) do
    if u.meta_set[field] then
      meta_args[#meta_args + 1] = field
      meta_args[#meta_args + 1] = u.meta_set[field]
    end
  end
  if #meta_args > 0 then redis.call('HSET', u.meta, unpack(meta_args)) end
  redis.call('EXPIRE', u.seen, math.max(ttl, math.ceil(window)))
  if refresh then
    for _, suffix in ipairs(SUFFIXES) do redis.call('EXPIRE', u.prefix .. suffix, ttl) end
  end
end

local function apply_shard(shard, packed, entry_id)
  local pending_key = shard .. 'pending'
  local users = {}   -- user -> its state in this call
  local order = {}
  local out = {}
  local popularity = {sums = {}, order = {}}
  local covisits = {sums = {}, order = {}}

  for user, event_id, item, w_text, rank_text, t_text, location in
      string.gmatch(packed, RECORD) do
    local u = users[user]
    if u == nil then
      u = new_user(shard, user)
      users[user] = u
    end
    -- one call both checks and records the id: NX adds it only if unseen (and then says 1)
    if redis.call('ZADD', u.seen, 'NX', now_text, event_id) == 0 then
      out[#out + 1] = 0
    else
      if u.seen_n ~= nil then u.seen_n = u.seen_n + 1 end
      if not u.touched then
        u.touched = true
        order[#order + 1] = u
      end
      apply_event(u, item, w_text, rank_text, t_text, location, popularity, covisits)
      out[#out + 1] = 1
    end
  end

  for _, u in ipairs(order) do finish_user(u) end

  -- the pending entries the caller must count: this call's (written atomically with the user
  -- updates above), then any left behind by a caller that died before counting them
  local pop_text = packed_records(popularity.sums, popularity.order)
  local cv_text = packed_records(covisits.sums, covisits.order)
  local leftovers = redis.call('HGETALL', pending_key)
  if #popularity.order > 0 then
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
  if #leftovers > 0 or #popularity.order > 0 then redis.call('EXPIRE', pending_key, ttl) end
  return out
end

local replies = {}
local packed_shards = split_keep(ARGV[7], '\28')
for k, shard in ipairs(KEYS) do
  replies[k] = apply_shard(shard, packed_shards[k] or '', entry_base .. shard)
end
return replies
