-- Argo CD health of a restack.dev Stackerfile, from its kstatus conditions (docs/gitops.md).
-- Stalled=True -> Degraded (Suspended when spec.suspend stopped it), Reconciling=True ->
-- Progressing, Ready=True -> Healthy. A status older than the spec says nothing yet.
local hs = { status = "Progressing", message = "Waiting for the restack operator to reconcile" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.message = "Waiting for the restack operator to observe generation " .. generation
  return hs
end
local conditions = {}
for _, condition in ipairs(obj.status.conditions) do
  conditions[condition.type] = condition
end
local function holds(type)
  return conditions[type] ~= nil and conditions[type].status == "True"
end
local function say(type)
  local condition = conditions[type]
  return (condition.reason or type) .. ": " .. (condition.message or "")
end
if holds("Stalled") then
  hs.status = conditions.Stalled.reason == "Suspended" and "Suspended" or "Degraded"
  hs.message = say("Stalled")
elseif holds("Reconciling") then
  hs.status = "Progressing"
  hs.message = say("Reconciling")
elseif holds("Ready") then
  hs.status = "Healthy"
  hs.message = say("Ready")
elseif conditions.Ready ~= nil then
  hs.status = "Degraded"
  hs.message = say("Ready")
end
return hs
