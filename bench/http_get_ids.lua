-- wrk script: GET $EF_BENCH_PREFIX/<id> for ids picked at random from the file named by
-- $EF_BENCH_IDS (one id a line); e.g. prefix /api/users or /api/orders.
local ids = {}
local prefix = os.getenv("EF_BENCH_PREFIX")

function init(args)
   for line in io.lines(os.getenv("EF_BENCH_IDS")) do
      if #line > 0 then ids[#ids + 1] = line end
   end
   math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
end

function request()
   return wrk.format("GET", prefix .. "/" .. ids[math.random(#ids)])
end
