-- wrk script: CreateOrder as bench/http_create_order.lua, paced: each connection waits
-- $EF_BENCH_DELAY_MS before each request, so that wrk keeps a steady rate (about
-- connections x 1000 / (delay + latency) per second) instead of as many as it can.
dofile(os.getenv("EF_BENCH_LUA_DIR") .. "/http_create_order.lua")

local pause = tonumber(os.getenv("EF_BENCH_DELAY_MS") or "0")

function delay()
   return pause
end
