-- Argo CD health of a restack.dev ImageBuild, from its phase (docs/gitops.md).
-- Succeeded -> Healthy, Failed -> Degraded, Pending/Running (or no status yet) -> Progressing.
local hs = { status = "Progressing", message = "Waiting for the restack operator to start the build" }
if obj.status == nil or obj.status.phase == nil then
  return hs
end
local phase = obj.status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Failed" then
  hs.status = "Degraded"
end
hs.message = obj.status.message or phase
return hs
