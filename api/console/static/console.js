// tikflow console: form checks as you type, typed confirmation, and live progress polling.
// Plain browser JavaScript with no build step; every page also works without it.
"use strict";

const POLL_INTERVAL_MS = 2000;
// Final plan states; needs_operator is not final because the workflow waits for an operator.
const PLAN_DONE = new Set(["applied", "rolled_back", "failed", "aborted"]);

function fieldMessage(input) {
  const value = input.value.trim();
  if (input.required && !value) {
    return input.dataset.message || "This field is required.";
  }
  if (value && input.pattern && !new RegExp(`^(?:${input.pattern})$`).test(value)) {
    return input.dataset.message || "This value has the wrong format.";
  }
  if (value && input.dataset.min && (Number(value) < Number(input.dataset.min) || Number(value) > Number(input.dataset.max))) {
    return input.dataset.message;
  }
  if (input.dataset.oneOf) {
    const other = input.form.elements[input.dataset.oneOf];
    if (!value && other && !other.value.trim()) {
      return input.dataset.message;
    }
  }
  return "";
}

function showFieldMessage(input, message) {
  const slot = document.getElementById(`${input.id}-error`);
  input.setAttribute("aria-invalid", message ? "true" : "false");
  if (slot) {
    slot.textContent = message;
    slot.hidden = !message;
  }
}

function setUpValidation(form) {
  const inputs = Array.from(form.querySelectorAll("input[id]:not([type=hidden])"));
  for (const input of inputs) {
    input.addEventListener("input", () => {
      if (input.dataset.touched) showFieldMessage(input, fieldMessage(input));
    });
    input.addEventListener("blur", () => {
      input.dataset.touched = "1";
      showFieldMessage(input, fieldMessage(input));
    });
  }
  form.addEventListener("submit", (event) => {
    let firstInvalid = null;
    for (const input of inputs) {
      const message = fieldMessage(input);
      showFieldMessage(input, message);
      if (message && !firstInvalid) firstInvalid = input;
    }
    if (firstInvalid) {
      event.preventDefault();
      firstInvalid.focus();
    }
  });
}

function setUpConfirmName(form) {
  const input = form.querySelector("input[name=confirm_name]");
  const button = form.querySelector("button[type=submit]");
  const update = () => { button.disabled = input.value.trim() !== form.dataset.confirmName; };
  input.addEventListener("input", update);
  update();
}

function replaceRows(body, rows) {
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell === null || cell === undefined ? "" : String(cell);
      tr.append(td);
    }
    return tr;
  }));
}

function replaceItems(list, items, emptyText) {
  const entries = items.length ? items : [emptyText];
  list.replaceChildren(...entries.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
}

// Turn each row's first cell (a workflow id) into a link to it in the Temporal UI.
function linkWorkflows(body, base) {
  if (!base) return;
  for (const cell of body.querySelectorAll("tr > td:first-child")) {
    const link = document.createElement("a");
    link.href = base + encodeURIComponent(cell.textContent);
    link.rel = "noopener";
    link.textContent = cell.textContent;
    cell.replaceChildren(link);
  }
}

async function fetchJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
  if (response.redirected || !response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

// Show only the plan actions the current state allows; the server sends the list.
function showActions(actions) {
  const forms = Array.from(document.querySelectorAll("form[data-plan-action]"));
  let visibleCount = 0;
  for (const form of forms) {
    form.hidden = !actions.includes(form.dataset.planAction);
    if (!form.hidden) visibleCount += 1;
  }
  const none = document.getElementById("no-actions");
  if (none) none.hidden = visibleCount > 0;
}

function pollPlan(section) {
  const status = document.getElementById("plan-status");
  const tick = async () => {
    let data;
    try {
      data = await fetchJson(section.dataset.poll);
    } catch (err) {
      document.getElementById("plan-detail").textContent = `Progress is not available right now (${err.message}); retrying.`;
      window.setTimeout(tick, POLL_INTERVAL_MS);
      return;
    }
    status.textContent = data.status;
    status.className = `badge plan-${data.status}`;
    document.getElementById("plan-phase").textContent = data.phase || "";
    document.getElementById("plan-detail").textContent = data.detail || "";
    document.getElementById("plan-paused").hidden = !data.paused;
    replaceItems(document.getElementById("plan-batches"),
      data.batches.map((b) => `${b.label} (${b.devices.join(", ")}): ${b.status}`),
      "No batches yet; they appear when the rollout starts.");
    replaceRows(document.getElementById("plan-steps"),
      data.steps.map((s) => [s.seq, s.device, s.path, s.action, s.status, s.error]));
    replaceItems(document.getElementById("plan-approvals"), data.approved_by, "No approvals yet.");
    showActions(data.actions);
    section.dataset.status = data.status;
    if (!PLAN_DONE.has(data.status)) window.setTimeout(tick, POLL_INTERVAL_MS);
  };
  window.setTimeout(tick, POLL_INTERVAL_MS);
}

function pollOperations(section) {
  const tick = async () => {
    let data;
    try {
      data = await fetchJson(section.dataset.poll);
    } catch (err) {
      window.setTimeout(tick, POLL_INTERVAL_MS);
      return;
    }
    const badge = document.getElementById("device-status");
    badge.textContent = data.status;
    badge.className = `badge status-${data.status}`;
    document.getElementById("device-reason").textContent = data.status_reason || "";
    replaceRows(document.getElementById("operations-body"),
      data.operations.map((op) => [op.workflow_id, op.status, op.phase, op.detail]));
    linkWorkflows(document.getElementById("operations-body"), section.dataset.workflowLink);
    const running = data.operations.some((op) => op.state === "running");
    section.dataset.running = running ? "true" : "false";
    if (running || (section.dataset.watch && !data.operations.some((op) => op.workflow_id === section.dataset.watch))) {
      window.setTimeout(tick, POLL_INTERVAL_MS);
    }
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-validate]").forEach(setUpValidation);
  document.querySelectorAll("form[data-confirm-name]").forEach(setUpConfirmName);
  const progress = document.getElementById("progress");
  if (progress && progress.dataset.poll) pollPlan(progress);
  const operations = document.getElementById("operations");
  if (operations && operations.dataset.poll) pollOperations(operations);
});
