-- Argo CD health of a Velero Backup (argocd-cm: resource.customizations.health.velero.io_Backup).
-- While a backup waits, its message is backup-gate's reason (the backup-gate.io/reason
-- annotation, e.g. "waits behind nightly (InProgress): both snapshot PVC shop/data-db-0"), so
-- the Argo CD UI says why a synced Backup has not started.
local hs = {}
local phase = ""
if obj.status ~= nil and obj.status.phase ~= nil then phase = obj.status.phase end
local annotations = {}
if obj.metadata ~= nil and obj.metadata.annotations ~= nil then annotations = obj.metadata.annotations end
local reason = annotations["backup-gate.io/reason"]

if phase == "" or phase == "New" or phase == "Queued" or phase == "ReadyToStart" then
  hs.status = "Progressing"
  if reason ~= nil and reason ~= "" then
    hs.message = "backup-gate: " .. reason
  elseif phase == "ReadyToStart" then
    hs.message = "started by backup-gate; waiting for Velero to pick it up"
  else
    hs.message = "waiting for backup-gate to plan it (phase " .. (phase ~= "" and phase or "New") .. ")"
  end
elseif phase == "Completed" then
  hs.status = "Healthy"
  hs.message = "Completed"
elseif phase == "PartiallyFailed" or phase == "Failed" or phase == "FailedValidation" then
  hs.status = "Degraded"
  local why = phase
  if obj.status.failureReason ~= nil and obj.status.failureReason ~= "" then
    why = phase .. ": " .. obj.status.failureReason
  elseif obj.status.validationErrors ~= nil and obj.status.validationErrors[1] ~= nil then
    why = phase .. ": " .. obj.status.validationErrors[1]
  end
  hs.message = why
elseif phase == "Deleting" then
  hs.status = "Suspended"
  hs.message = "Deleting"
else
  -- InProgress, WaitingForPluginOperations, Finalizing and their variants: Velero is working.
  hs.status = "Progressing"
  hs.message = "Velero: " .. phase
end
return hs
