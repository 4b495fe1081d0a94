-- wrk script: POST /v1/projects with a small JSON body (the Authorization header comes from wrk's -H).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"name":"bench-' .. n .. '","description":"created by bench/http_audit.sh"}')
end
