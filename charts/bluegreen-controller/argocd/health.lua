-- Argo CD health check for bluegreen.dev/BlueGreenRelease (DESIGN §8).
--
-- Install it in argocd-cm:
--   data:
--     resource.customizations.health.bluegreen.dev_BlueGreenRelease: |
--       <this file>
--
-- Written for Argo CD's Lua 5.1 (gopher-lua); `obj` is the live object.
-- Order matters: a status the controller has not yet recomputed for the current spec says
-- nothing about that spec, so staleness is checked before anything the status claims.

local hs = {}

local function condition(status, type)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function message_of(cond, fallback)
  if cond ~= nil and cond.message ~= nil and cond.message ~= "" then
    return cond.message
  end
  return fallback
end

local status = obj.status
local generation = obj.metadata ~= nil and obj.metadata.generation or nil

if status == nil or (generation ~= nil and status.observedGeneration ~= generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe the latest spec"
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message_of(stalled, status.message or "Release cannot progress")
  return hs
end

if status.phase == "AwaitingPromotion" then
  hs.status = "Suspended"
  hs.message = status.message or "Waiting for a promote action (annotation bluegreen.dev/action=promote)"
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message_of(ready, status.message or "Release is stable")
  return hs
end

hs.status = "Progressing"
hs.message = status.message or ("Phase " .. tostring(status.phase or "unknown"))
return hs
