-- wrk script: POST /v1/access for the five operations fields (or CANDOR_PURPOSE and the JSON
-- array CANDOR_FIELDS), cycling over the seeded customers.
local token = os.getenv("CANDOR_TOKEN")
local subjects = tonumber(os.getenv("CANDOR_SUBJECTS") or "512")
local purpose = os.getenv("CANDOR_PURPOSE") or "essential.service.operations"
local fields = os.getenv("CANDOR_FIELDS") or
  '["user.name","user.contact.email","user.contact.address","user.contact.phone_number",' ..
  '"user.behavior.purchase_history"]'
local n = 0

request = function()
  n = n + 1
  local body = string.format('{"subject":"cus_%d","purpose":"%s","fields":%s}',
    n % subjects, purpose, fields)
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
