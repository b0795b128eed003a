-- Runs health.lua against example objects and checks the Argo CD health it reports.
-- Usage: lua5.4 charts/bluegreen-controller/argocd/test/run.lua   (any working directory)
-- Exits 1 when a case fails.

local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local script = here .. "/../health.lua"

-- Argo CD runs the script with the object in the global `obj`.
local function health(object)
  local env = setmetatable({ obj = object }, { __index = _G })
  local chunk, err
  if setfenv then -- Lua 5.1, like Argo CD's gopher-lua
    chunk, err = loadfile(script)
    if chunk then
      setfenv(chunk, env)
    end
  else
    chunk, err = loadfile(script, "t", env)
  end
  assert(chunk, err)
  return chunk()
end

local function release(generation, status)
  return {
    apiVersion = "bluegreen.dev/v1alpha1",
    kind = "BlueGreenRelease",
    metadata = { name = "shop", namespace = "prod", generation = generation },
    status = status,
  }
end

local function cond(type, status, message)
  return { type = type, status = status, reason = "Test", message = message }
end

local cases = {
  {
    name = "no status yet",
    obj = release(1, nil),
    want = "Progressing",
  },
  {
    name = "status of an older generation, even if it said Ready",
    obj = release(3, {
      observedGeneration = 2,
      phase = "Stable",
      conditions = { cond("Ready", "True", "stable") },
    }),
    want = "Progressing",
  },
  {
    name = "stale status wins over Stalled",
    obj = release(3, {
      observedGeneration = 2,
      phase = "Failed",
      conditions = { cond("Stalled", "True", "smoke test failed") },
    }),
    want = "Progressing",
  },
  {
    name = "failed rollout is Degraded with the condition message",
    obj = release(2, {
      observedGeneration = 2,
      phase = "Failed",
      message = "phase message",
      conditions = { cond("Ready", "False"), cond("Stalled", "True", "smoke test http failed") },
    }),
    want = "Degraded",
    want_message = "smoke test http failed",
  },
  {
    name = "rolled back is Degraded (the spec asks for the rolled-back revision)",
    obj = release(4, {
      observedGeneration = 4,
      phase = "RolledBack",
      conditions = { cond("Ready", "False"), cond("Stalled", "True", "rolled back") },
    }),
    want = "Degraded",
  },
  {
    name = "Stalled=False does not degrade",
    obj = release(1, {
      observedGeneration = 1,
      phase = "Testing",
      conditions = { cond("Stalled", "False"), cond("Reconciling", "True") },
    }),
    want = "Progressing",
  },
  {
    name = "awaiting manual promotion is Suspended",
    obj = release(5, {
      observedGeneration = 5,
      phase = "AwaitingPromotion",
      message = "smoke tests passed; waiting for promote",
      conditions = { cond("Ready", "False"), cond("SmokeTestsPassed", "True") },
    }),
    want = "Suspended",
    want_message = "smoke tests passed; waiting for promote",
  },
  {
    name = "stable and ready is Healthy",
    obj = release(7, {
      observedGeneration = 7,
      phase = "Stable",
      conditions = { cond("Ready", "True", "v2 is live on green"), cond("Stalled", "False") },
    }),
    want = "Healthy",
    want_message = "v2 is live on green",
  },
  {
    name = "mid-rollout is Progressing with the phase message",
    obj = release(2, {
      observedGeneration = 2,
      phase = "Deploying",
      message = "waiting for green to be available",
      conditions = { cond("Ready", "False"), cond("Reconciling", "True") },
    }),
    want = "Progressing",
    want_message = "waiting for green to be available",
  },
  {
    name = "verifying after the flip is Progressing, not Healthy",
    obj = release(3, {
      observedGeneration = 3,
      phase = "Verifying",
      message = "verifying version 2 on green: 3 passed, 0 failed, 0 inconclusive of 3 samples; 240s left",
      conditions = { cond("Ready", "False"), cond("Reconciling", "True"), cond("Stalled", "False") },
    }),
    want = "Progressing",
    want_message = "verifying version 2 on green: 3 passed, 0 failed, 0 inconclusive of 3 samples; 240s left",
  },
  {
    name = "no conditions and no message still answers",
    obj = release(1, { observedGeneration = 1, phase = "Pending" }),
    want = "Progressing",
    want_message = "Phase Pending",
  },
  {
    name = "object without metadata.generation is judged on its status",
    obj = {
      metadata = { name = "shop" },
      status = { phase = "Stable", conditions = { cond("Ready", "True") } },
    },
    want = "Healthy",
  },
}

local failures = 0
for _, case in ipairs(cases) do
  local ok, result = pcall(health, case.obj)
  local problem
  if not ok then
    problem = "error: " .. tostring(result)
  elseif type(result) ~= "table" then
    problem = "returned " .. type(result) .. ", not a table"
  elseif result.status ~= case.want then
    problem = string.format("status %s, want %s", tostring(result.status), case.want)
  elseif case.want_message and result.message ~= case.want_message then
    problem = string.format("message %q, want %q", tostring(result.message), case.want_message)
  elseif type(result.message) ~= "string" or result.message == "" then
    problem = "empty message"
  end
  if problem then
    failures = failures + 1
    print("FAIL " .. case.name .. ": " .. problem)
  else
    print("ok   " .. case.name)
  end
end

print(string.format("%d cases, %d failed", #cases, failures))
os.exit(failures == 0 and 0 or 1)
