-- wrk script: POST /api/orders (CreateOrder, one line, quantity 1) for users picked at
-- random from the id file named by $EF_BENCH_USERS; $EF_BENCH_ITEM is an item with ample
-- stock. Order ids are left to the server. Non-2xx answers are counted by wrk as errors.
local users = {}
local item = os.getenv("EF_BENCH_ITEM")

local function load(path)
   local t = {}
   for line in io.lines(path) do
      if #line > 0 then t[#t + 1] = line end
   end
   return t
end

function init(args)
   users = load(os.getenv("EF_BENCH_USERS"))
   math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
end

function request()
   local u = users[math.random(#users)]
   local body = '{"user_id":"' .. u .. '","items":[{"item_id":"' .. item .. '","quantity":1}]}'
   return wrk.format("POST", "/api/orders", {["Content-Type"] = "application/json"}, body)
end
