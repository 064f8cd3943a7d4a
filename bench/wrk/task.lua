-- wrk script: GET /v1/tasks/T<i> for random i in [0, TASKS), formatted once in init().
local n = tonumber(os.getenv("TASKS") or "1000")
local reqs = {}
function init(args)
   math.randomseed(7)
   for i = 1, 10000 do
      reqs[i] = wrk.format("GET", "/v1/tasks/T" .. math.random(0, n - 1))
   end
end
local k = 0
function request()
   k = k % 10000 + 1
   return reqs[k]
end
