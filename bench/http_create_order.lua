-- wrk script: POST /api/orders (CreateOrder) for users picked at random from the id file
-- named by $EF_BENCH_USERS, with 1 to 3 lines (quantity 1) of distinct items picked at
-- random from the id file named by $EF_BENCH_ITEMS (the shape of PostgreSQL's peer,
-- bench/pg_create_order.sql); without $EF_BENCH_ITEMS, one line of the item $EF_BENCH_ITEM.
-- Order ids are left to the server. Non-2xx answers are counted by wrk as errors.
-- $EF_BENCH_PATH (default /api/orders) sends the same requests elsewhere: the trivial
-- responder's ceiling in the command's own request shape.
local users = {}
local items = {}
local path = "/api/orders"

local function load(path)
   local t = {}
   for line in io.lines(path) do
      if #line > 0 then t[#t + 1] = line end
   end
   return t
end

function init(args)
   users = load(os.getenv("EF_BENCH_USERS"))
   if os.getenv("EF_BENCH_ITEMS") then
      items = load(os.getenv("EF_BENCH_ITEMS"))
   else
      items = { os.getenv("EF_BENCH_ITEM") }
   end
   path = os.getenv("EF_BENCH_PATH") or path
   math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
end

-- n distinct random items (n <= #items): a partial Fisher-Yates shuffle.
local function pick(n)
   local lines = {}
   for i = 1, n do
      local j = math.random(i, #items)
      items[i], items[j] = items[j], items[i]
      lines[i] = '{"item_id":"' .. items[i] .. '","quantity":1}'
   end
   return table.concat(lines, ",")
end

function request()
   local u = users[math.random(#users)]
   local n = math.min(math.random(3), #items)
   local body = '{"user_id":"' .. u .. '","items":[' .. pick(n) .. ']}'
   return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end
