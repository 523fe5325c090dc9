-- wrk script: POST /v1/access for the five operations fields, cycling over the seeded customers.
local token = os.getenv("CANDOR_TOKEN")
local subjects = tonumber(os.getenv("CANDOR_SUBJECTS") or "512")
local n = 0

request = function()
  n = n + 1
  local body = string.format(
    '{"subject":"cus_%d","purpose":"essential.service.operations","fields":' ..
    '["user.name","user.contact.email","user.contact.address","user.contact.phone_number",' ..
    '"user.behavior.purchase_history"]}', n % subjects)
  return wrk.format("POST", "/v1/access", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

response = function(status, headers, body)
  if status ~= 200 then
    error("unexpected status " .. status .. ": " .. body)
  end
end
