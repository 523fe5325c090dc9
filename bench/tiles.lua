-- wrk script: GET every full level-0 tile in turn, with the tlog-tiles path encoding.
local tiles = tonumber(os.getenv("CANDOR_TILES") or "1")
local n = 0

local function tile_path(index)
  local groups = {}
  repeat
    table.insert(groups, 1, index % 1000)
    index = math.floor(index / 1000)
  until index == 0
  local parts = {}
  for i, g in ipairs(groups) do
    parts[i] = string.format(i < #groups and "x%03d" or "%03d", g)
  end
  return table.concat(parts, "/")
end

request = function()
  n = n + 1
  return wrk.format("GET", "/log/tile/0/" .. tile_path(n % tiles))
end

response = function(status, headers, body)
  if status ~= 200 or #body ~= 8192 then
    error("unexpected status " .. status .. " or length " .. #body)
  end
end
