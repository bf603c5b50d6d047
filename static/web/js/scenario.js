// The lab page's scenarios: choose one of the lab's, run it, pause, resume or stop it
// (stopping restores the lab); a time line with a tick per step and a cursor at the run's
// time, each step's result as it comes (a command's output, a check's count). The server
// runs the steps; this page only shows them (`scenario.progress` events, and the run read
// again on load).

import { get, post, refusal } from "labmgr/api.js";

export function startScenarios({ currentDeployment, charts }) {
  const card = document.getElementById("scenario");
  if (!card) return { onProgress() {} };
  const select = document.getElementById("scenario-name");
  const buttons = Object.fromEntries(
    ["run", "pause", "resume", "stop"].map((name) => [name, document.getElementById(`scenario-${name}`)]),
  );
  const errorBox = document.getElementById("scenario-error");
  const info = document.getElementById("scenario-run-info");
  const timeline = document.getElementById("scenario-timeline");
  const cursor = document.getElementById("scenario-cursor");
  const results = document.getElementById("scenario-results");
  const badge = document.getElementById("lab-status");
  let run = null;
  let names = [];

  const showError = (sentence) => {
    errorBox.hidden = !sentence;
    errorBox.textContent = sentence;
  };
  const running = () => badge?.dataset.status === "running";
  const length = () => Math.max(1, ...(run?.steps || []).map((s) => Number(s.at))) * 1.05;
  const now = () => {
    if (!run) return 0;
    return run.running_since ? run.elapsed + (Date.now() / 1000 - run.running_since) : run.offset;
  };

  const act = async (url, body) => {
    showError("");
    try {
      adopt(await post(url, body));
    } catch (error) {
      showError(refusal(error));
    }
  };

  buttons.run?.addEventListener("click", () => {
    const deployment = currentDeployment();
    if (deployment && select.value) act(`/api/deployments/${deployment}/scenarios/`, { scenario: select.value });
  });
  for (const verb of ["pause", "resume", "stop"]) {
    buttons[verb]?.addEventListener("click", () => run && act(`/api/scenario-runs/${run.id}/${verb}/`));
  }

  const adopt = (next) => {
    run = next;
    draw();
  };

  const draw = () => {
    const active = run && ["running", "paused"].includes(run.state);
    if (buttons.run) buttons.run.hidden = Boolean(active) || !running() || !names.length;
    if (buttons.pause) buttons.pause.hidden = run?.state !== "running";
    if (buttons.resume) buttons.resume.hidden = run?.state !== "paused";
    if (buttons.stop) buttons.stop.hidden = !active;
    if (select) select.disabled = Boolean(active);
    if (!run) {
      info.textContent = !currentDeployment() || !running() ? "Scenarios run while the lab runs."
        : names.length ? "No scenario has run on this deployment." : "The lab's labfile has no scenarios.";
      timeline.hidden = true;
      results.replaceChildren();
      return;
    }
    const ended = run.state === "finished" || run.state === "stopped";
    const failed = run.results.filter((r) => !r.ok).length;
    info.replaceChildren(
      `Scenario ${run.name} (run #${run.id}, by ${run.actor || "?"}): ${run.state}`
        + (run.reason ? ` (${run.reason})` : "")
        + `, ${run.results.filter((r) => r.index != null).length} of ${run.steps.length} steps run`
        + (failed ? `, ${failed} failed` : "") + ". ",
    );
    if (ended) {
      const link = document.createElement("a");
      link.href = `/api/scenario-runs/${run.id}/export`;
      link.textContent = "Export the results";
      link.setAttribute("download", "");
      info.append(link);
    }
    card.dataset.state = run.state;
    timeline.hidden = false;
    const ticks = run.steps.map((step, index) => {
      const tick = document.createElement("span");
      tick.className = "timeline-step";
      tick.style.left = `${(100 * Number(step.at)) / length()}%`;
      tick.title = `${step.at} s: ${describe(step.action)}`;
      const result = run.results.find((r) => r.index === index);
      if (result) tick.dataset.ok = String(Boolean(result.ok));
      return tick;
    });
    timeline.replaceChildren(...ticks, cursor);
    results.replaceChildren(...run.results.map(resultItem));
    moveCursor();
  };

  const moveCursor = () => {
    if (!run) return;
    const at = Math.min(now(), length());
    cursor.style.left = `${(100 * at) / length()}%`;
    timeline.dataset.offset = at.toFixed(1);
  };
  setInterval(moveCursor, 250);

  const load = async () => {
    const deployment = currentDeployment();
    if (!deployment) return draw();
    try {
      const detail = await get(`/api/deployments/${deployment}/`);
      names = Object.keys(detail.labfile?.scenarios || {});
      if (select) {
        const chosen = select.value;
        select.replaceChildren(...names.map((name) => new Option(name, name)));
        if (names.includes(chosen)) select.value = chosen;
      }
      const runs = await get(`/api/deployments/${deployment}/scenarios/`);
      run = runs[0] || null;
      for (const result of run?.results || []) markOf(result);
    } catch (error) {
      showError(error.message);
    }
    draw();
  };
  if (badge) new MutationObserver(load).observe(badge, { attributes: true, attributeFilter: ["data-status"] });
  load();

  // Commands and checks are marked here; live changes come as `deployment.live`.
  const markOf = (result) => {
    const verb = Object.keys(result.action || {})[0];
    if ((verb === "exec" || verb === "check") && result.time) charts?.mark(result.time, result.message, result.ok);
  };

  return {
    onProgress(event) {
      if (event.result) markOf(event.result);
      adopt(event.run);
    },
  };
}

function describe(action) {
  const [verb, value] = Object.entries(action || {})[0] || ["", ""];
  if (verb === "exec") return `exec on ${value.node}: ${(value.command || []).join(" ")}`;
  if (typeof value === "string") return `${verb} ${value}`;
  return `${verb} ${Object.entries(value).map(([k, v]) => `${k} ${v}`).join(", ")}`;
}

function resultItem(result) {
  const item = document.createElement("li");
  item.dataset.status = result.ok ? "succeeded" : "failed";
  const badge = document.createElement("span");
  badge.className = `status step-${result.ok ? "succeeded" : "failed"}`;
  badge.textContent = result.ok ? "Done" : "Failed";
  const what = document.createElement("span");
  what.textContent = `${result.at == null ? "stop" : `${result.at} s`}: ${result.message}`;
  if (result.output) {
    const output = document.createElement("pre");
    output.className = "small";
    output.textContent = result.output;
    what.append(output);
  }
  item.append(badge, what);
  return item;
}
