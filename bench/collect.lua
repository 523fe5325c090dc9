-- wrk script: PUT one field for ever new customers, to grow the log quickly.
local token = os.getenv("CANDOR_TOKEN")
local n = 0
local thread_id = 0

setup = function(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

request = function()
  n = n + 1
  return wrk.format("PUT", string.format("/v1/subjects/t%d_%d/data", thread_id, n), {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, '{"purpose":"essential.service.operations","fields":{"user.name":"Ada"}}')
end
