-- wrk script for bench/tenant_scale.sh: every request is GET /v1/projects?limit=20 as one of the tenants whose
-- access tokens are in the file $TOKENS_FILE (one per line), picked at random.
local tokens = {}

function init(args)
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  local token = tokens[math.random(#tokens)]
  return wrk.format("GET", "/v1/projects?limit=20", {["Authorization"] = "Bearer " .. token})
end
