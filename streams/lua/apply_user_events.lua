--[[
apply_user_events.lua — one user's events, applied atomically (paper 000 Eq. 1–3, closed form).

All keys share the user's hash tag, so the script is valid on Redis Cluster.

KEYS[1]  ss:{u}:a       ZSET  item -> A(u,i) = sum_k w_k * exp(lambda * (t_k - r_u))
KEYS[2]  ss:{u}:meta    HASH  ref (r_u, epoch s), last_t, lat, lon
KEYS[3]  ss:{u}:beh     HASH  item -> strongest behaviour rank seen (0 view .. 3 purchase)
KEYS[4]  ss:{u}:seen    ZSET  event_id -> event time (dedupe window)
KEYS[5]  ss:{u}:recent  LIST  most recent distinct items, newest first (co-visitation)

ARGV[1]  lambda per second          ARGV[2]  rebase bound (on lambda * (t - r_u))
ARGV[3]  max items kept per user    ARGV[4]  key TTL seconds
ARGV[5]  dedupe window seconds      ARGV[6]  recent items kept (co-visitation fan-out)
ARGV[7]  number of events n, then n groups of 6 values:
         event_id, item_id, weight, behaviour rank, t (epoch s), location ("lat,lon" or "")

Returns  a flat array, per event: status (1 applied, 0 duplicate), then a string with the
         recent items before this event joined by "\n" ("" for a duplicate), so the caller can
         update the global co-visitation counts of the pairs it created.

Rules (the pure-Python twin is streams/decay.py:DecayedScores; a test holds them equal):
- duplicate event_id inside the dedupe window -> nothing changes;
- first event sets r_u = t; when lambda * (t - r_u) > bound the user is rebased once:
  every A multiplied by exp(-lambda * (t - r_u)), r_u = t;
- A(u,i) += w * exp(lambda * (t - r_u))  (one ZINCRBY; no other score touched);
- the set keeps the strongest N (ties: lowest member first out, as ZREMRANGEBYRANK does);
- every key gets the TTL.
]]

local lam = tonumber(ARGV[1])
local bound = tonumber(ARGV[2])
local max_items = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local keep_recent = tonumber(ARGV[6])
local n = tonumber(ARGV[7])

local ref = tonumber(redis.call('HGET', KEYS[2], 'ref'))
local last_t = tonumber(redis.call('HGET', KEYS[2], 'last_t'))
local out = {}
local touched = false

for k = 0, n - 1 do
  local base = 8 + k * 6
  local event_id = ARGV[base]
  local item = ARGV[base + 1]
  local weight = tonumber(ARGV[base + 2])
  local rank = tonumber(ARGV[base + 3])
  local t = tonumber(ARGV[base + 4])
  local location = ARGV[base + 5]

  if redis.call('ZSCORE', KEYS[4], event_id) then
    out[#out + 1] = 0
    out[#out + 1] = ''
  else
    touched = true
    redis.call('ZADD', KEYS[4], t, event_id)
    if ref == nil then
      ref = t
      redis.call('HSET', KEYS[2], 'ref', string.format('%.17g', ref))
    elseif lam * (t - ref) > bound then
      local factor = math.exp(-lam * (t - ref))
      local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
      for j = 1, #all, 2 do
        redis.call('ZADD', KEYS[1], string.format('%.17g', tonumber(all[j + 1]) * factor), all[j])
      end
      ref = t
      redis.call('HSET', KEYS[2], 'ref', string.format('%.17g', ref))
    end
    redis.call('ZINCRBY', KEYS[1], string.format('%.17g', weight * math.exp(lam * (t - ref))), item)
    local previous = tonumber(redis.call('HGET', KEYS[3], item))
    if previous == nil or rank > previous then
      redis.call('HSET', KEYS[3], item, rank)
    end
    local card = redis.call('ZCARD', KEYS[1])
    if card > max_items then
      local dropped = redis.call('ZRANGE', KEYS[1], 0, card - max_items - 1)
      redis.call('ZREMRANGEBYRANK', KEYS[1], 0, card - max_items - 1)
      redis.call('HDEL', KEYS[3], unpack(dropped))
    end
    -- co-visitation partners: the recent items before this one (newest first), then
    -- move this item to the front of the recent list
    local recent = redis.call('LRANGE', KEYS[5], 0, keep_recent - 1)
    local partners = {}
    for _, other in ipairs(recent) do
      if other ~= item then partners[#partners + 1] = other end
    end
    redis.call('LREM', KEYS[5], 0, item)
    redis.call('LPUSH', KEYS[5], item)
    redis.call('LTRIM', KEYS[5], 0, keep_recent - 1)
    if last_t == nil or t > last_t then
      last_t = t
      redis.call('HSET', KEYS[2], 'last_t', string.format('%.17g', t))
      if location ~= '' then
        local comma = string.find(location, ',', 1, true)
        redis.call('HSET', KEYS[2], 'lat', string.sub(location, 1, comma - 1),
                   'lon', string.sub(location, comma + 1))
      end
    end
    out[#out + 1] = 1
    out[#out + 1] = table.concat(partners, '\n')
  end
end

if touched then
  -- the dedupe window is measured in event time, from the newest event seen
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. string.format('%.17g', last_t - window))
  for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return out
