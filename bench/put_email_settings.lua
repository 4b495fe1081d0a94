-- wrk script: PUT /v1/email-settings (two encrypted fields, and an audit entry recording them as ciphertext); the
-- Authorization header comes from wrk's -H.
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"from_name":"Bench Sender ' .. n .. '","reply_to":"replies@bench.test"}')
end
