--[[
apply_global_events.lua — global time-decayed counters for a batch of applied events.

Item popularity (trends, paper 002 §3.3) and item-item co-visitation use the same closed form as
the user scores, with one global reference R instead of a per-user one:
    P(i)   = sum_k w_k * exp(lambda * (t_k - R))        popularity at T = P(i) * exp(-lambda (T - R))
    C(i,j) = sum over co-visits of w * exp(lambda * (t - R))
All keys share the hash tag {g}, so the script is valid on Redis Cluster (the global counters
then live on one slot; they take one call per batch).

KEYS[1]  ss:{g}:pop     ZSET  item -> P(i)
KEYS[2]  ss:{g}:meta    HASH  ref (R)
KEYS[3]  ss:{g}:cvkeys  SET   items that have a co-visitation set (for the rare rebase)

ARGV[1]  lambda per second     ARGV[2]  rebase bound      ARGV[3]  co-visitation set cap
ARGV[4]  key TTL seconds       ARGV[5]  co-visitation key prefix (e.g. "ss:{g}:cv:")
ARGV[6]  popularity entries packed in one string: records separated by \30, fields by \31:
         item, weight, t
ARGV[7]  co-visitation pairs packed the same way: item a, item b, weight, t
         (each pair is counted both ways: C(a,b) and C(b,a))

Returns  R after the update (as a string).
]]

local lam = tonumber(ARGV[1])
local bound = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local prefix = ARGV[5]

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
local popularity = records(ARGV[6])
local covisits = records(ARGV[7])

local ref = tonumber(redis.call('HGET', KEYS[2], 'ref'))
local newest = nil
for _, f in ipairs(popularity) do
  local t = tonumber(f[3])
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

for _, f in ipairs(popularity) do
  redis.call('ZINCRBY', KEYS[1], fmt(tonumber(f[2]) * math.exp(lam * (tonumber(f[3]) - ref))),
             f[1])
end

local touched = {}
for _, f in ipairs(covisits) do
  local a, b = f[1], f[2]
  local inc = fmt(tonumber(f[3]) * math.exp(lam * (tonumber(f[4]) - ref)))
  redis.call('ZINCRBY', prefix .. a, inc, b)
  redis.call('ZINCRBY', prefix .. b, inc, a)
  touched[a] = true
  touched[b] = true
end
for item, _ in pairs(touched) do
  local key = prefix .. item
  redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
  redis.call('EXPIRE', key, ttl)
  redis.call('SADD', KEYS[3], item)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
return fmt(ref)
