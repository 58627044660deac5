-- wrk script: POST a new batch job with a unique id on every request.
local counter = 0
local prefix = tostring(math.random(1, 1e9))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local body = '{"id":"w' .. prefix .. '-' .. counter .. '","type":"batch","groups":[{"name":"work","count":1,"resources":{"cpu":100,"memory":64},"task":{"command":["true"]}}]}'
  return wrk.format(nil, "/v1/jobs", nil, body)
end
