// The lab page: deploy / redeploy / cancel / destroy / check with a confirmation, the
// deployment's steps as they arrive, node states and live charts.

import { get, post } from "labmgr/api.js";
import { openStream } from "labmgr/live.js";
import { Charts } from "labmgr/charts.js";
import { keepFocusInside } from "labmgr/dialog.js";

const LABELS = {
  "": "Not deployed", pending: "Pending", deploying: "Deploying", running: "Running",
  destroying: "Destroying", destroyed: "Destroyed", failed: "Failed", cancelled: "Cancelled",
  unknown: "Unknown",
};
const STEP_LABELS = { started: "Started", succeeded: "Succeeded", failed: "Failed", errored: "Errored", rolled_back: "Rolled back" };
// Which buttons each status allows (the server decides; this only avoids useless clicks).
const ALLOWED = {
  "": ["deploy"], destroyed: ["deploy"], cancelled: ["deploy"],
  pending: ["cancel"], deploying: ["cancel"],
  running: ["redeploy", "destroy", "check"],
  destroying: [], failed: ["destroy", "deploy"], unknown: ["destroy"],
};
const CONFIRM = {
  deploy: ["Deploy this lab?", "It is built on a host now: namespaces, cgroups, links and processes.", "Deploy"],
  redeploy: ["Redeploy with the current definition?", "Only what changed since the last deploy is rebuilt; unchanged nodes keep running.", "Redeploy"],
  cancel: ["Cancel this deployment?", "What was built so far is torn down.", "Cancel it"],
  destroy: ["Destroy the running lab?", "Every node is stopped and every link, namespace and cgroup is removed. Open terminals close.", "Destroy"],
};

export function startLabPage(data) {
  const page = new LabPage(data);
  page.start();
  return page;
}

class LabPage {
  constructor(data) {
    this.data = data;
    this.deployment = data.deployment;
    this.status = data.status;
    this.badge = document.getElementById("lab-status");
    this.errorBox = document.getElementById("action-error");
    this.steps = document.getElementById("steps");
    this.actions = document.getElementById("lab-actions");
    this.charts = new Charts({
      container: document.getElementById("charts"),
      select: document.getElementById("metrics-node"),
      windowSelect: document.getElementById("metrics-window"),
      empty: document.getElementById("metrics-empty"),
      historyUrl: data.urls.metrics,
    });
  }

  start() {
    this.setStatus(this.status);
    this.updateProgress();
    this.actions?.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button) this.act(button.dataset.action);
    });
    for (const form of document.querySelectorAll("form[data-confirm]")) {
      form.addEventListener("submit", async (event) => {
        if (form.dataset.confirmed) return;
        event.preventDefault();
        if (await confirmDialog("Delete this lab?", form.dataset.confirm, "Delete")) {
          form.dataset.confirmed = "1";
          form.submit();
        }
      });
    }
    const state = document.getElementById("stream-state");
    openStream(this.data.urls.stream, {
      handlers: {
        "deployment.status": (e) => this.onStatus(e),
        "deployment.step": (e) => this.onStep(e),
        "deployment.live": (e) => {
          if (e.deployment !== this.deployment) return;
          this.charts.mark(Date.now() / 1000, e.action, e.ok);
          this.onLive?.(e);
          this.refreshNodes();
        },
        "scenario.progress": (e) => { if (e.deployment === this.deployment) this.onScenario?.(e); },
        "metrics.sample": (e) => this.charts.add(e.samples),
        "host.status": (e) => this.onHost(e),
        "reservation.warning": (e) => this.onReservation(e),
        "reservation.ended": (e) => this.onReservation(e),
      },
      onState: (s) => {
        state.textContent = { live: "live", reconnecting: "reconnecting…", refused: "not allowed to watch" }[s] || s;
        state.className = "live-state " + (s === "live" ? "ok" : "down");
      },
      onReconnect: () => this.reload(),
    });
    this.charts.start();
    this.loadMarks();
  }

  // The deployment's live changes so far, as marks on the charts.
  async loadMarks() {
    if (!this.deployment) return;
    try {
      const deployment = await get(`/api/deployments/${this.deployment}/`);
      for (const step of deployment.steps || []) {
        if (step.name === "live" && step.created) {
          this.charts.mark(Date.parse(step.created) / 1000, step.message, step.status === "succeeded");
        }
      }
    } catch {
      // no marks: the charts still draw
    }
  }

  async act(action) {
    const [title, text, yes] = CONFIRM[action] || [null];
    if (title && !(await confirmDialog(title, text, yes))) return;
    this.showError("");
    const url = action === "deploy" || action === "destroy"
      ? this.data.urls[action]
      : `/api/deployments/${this.deployment}/${action}/`;
    this.setBusy(true);
    try {
      const deployment = await post(url);
      this.adopt(deployment);
      if (action === "check") this.showDrift(deployment.drift, true);
    } catch (error) {
      this.showError(error.message);
    } finally {
      this.setBusy(false);
    }
  }

  // A deployment as the REST API returns it becomes the page's current one.
  adopt(deployment) {
    if (deployment.id !== this.deployment) {
      this.steps.replaceChildren();
      this.charts.reset();
    }
    this.deployment = deployment.id;
    for (const step of deployment.steps || []) this.onStep({ ...step, deployment: deployment.id });
    const info = document.getElementById("deployment-info");
    info.textContent = `Deployment #${deployment.id}${deployment.host ? " on " + deployment.host : ""}.`;
    this.setStatus(deployment.status);
  }

  async reload() {
    if (!this.deployment) return;
    try {
      this.adopt(await get(`/api/deployments/${this.deployment}/`));
    } catch {
      // the stream will tell
    }
  }

  onStatus(event) {
    if (event.deployment !== this.deployment) {
      this.deployment = event.deployment;
      this.steps.replaceChildren();
    }
    this.setStatus(event.status);
    if (event.reason) this.showError(event.status === "failed" ? event.reason : "");
    if (event.drift) this.showDrift(event.drift, false);
    this.refreshNodes();
  }

  onStep(step) {
    if (step.deployment !== undefined && step.deployment !== this.deployment) return;
    let item = this.steps.querySelector(`li[data-seq="${step.seq}"]`);
    const fresh = !item;
    if (fresh) {
      item = document.createElement("li");
      item.dataset.seq = step.seq;
    }
    const badge = span(`status step-${step.status}`, STEP_LABELS[step.status] || step.status);
    const what = span("", step.name + " ");
    what.append(span("step-target", step.target || ""));
    if (step.message || step.actor) {
      const message = document.createElement("div");
      message.className = "small muted";
      message.textContent = [step.message, step.actor ? `by ${step.actor}` : ""].filter(Boolean).join(" — ");
      what.append(message);
    }
    const time = span("small muted", step.seconds == null ? "" : `${Number(step.seconds).toFixed(3)} s`);
    item.replaceChildren(badge, what, time);
    item.dataset.status = step.status;
    if (step.total) this.total = step.total;
    if (fresh) {
      const after = [...this.steps.children].find((li) => Number(li.dataset.seq) > step.seq);
      this.steps.insertBefore(item, after || null);
      item.scrollIntoView({ block: "nearest" });
    }
    this.updateProgress();
  }

  onHost(event) {
    if (event.status !== "online") this.showError(`The host ${event.host} is ${event.status}; what it runs is unknown until it reports again.`);
    else this.showError("");
  }

  // The user's own booking of a host: a warning before it ends, and its end, which takes
  // the user's labs on that host down.
  onReservation(event) {
    const box = document.getElementById("reservation-notice");
    if (!box) return;
    const end = new Date(event.end || Date.now());
    box.textContent = event.type === "reservation.warning"
      ? `Your booking of ${event.host} ends in ${event.seconds_left} s (at ${end.toLocaleTimeString([], { hour12: false })}): `
        + "your labs on it are destroyed then. Extend the booking on the calendar to keep them."
      : `Your booking of ${event.host} has ended (${event.status}); `
        + `${event.destroyed.length ? "your labs on it are taken down" : "no lab of yours was running on it"}.`;
    box.dataset.kind = event.type;
    box.hidden = false;
  }

  updateProgress() {
    const done = this.steps.querySelectorAll('li[data-status="succeeded"]').length;
    const bar = document.getElementById("progress-bar");
    const finished = ["running", "destroyed", "cancelled"].includes(this.status);
    const share = finished ? 1 : this.total ? Math.min(done / this.total, 1) : 0;
    bar.style.width = `${Math.round(share * 100)}%`;
  }

  setStatus(status) {
    this.status = status || "";
    this.badge.className = `status status-${this.status || "none"}`;
    this.badge.dataset.status = this.status;
    this.badge.textContent = LABELS[this.status] || this.status;
    const allowed = ALLOWED[this.status] || [];
    for (const button of this.actions?.querySelectorAll("button[data-action]") || []) {
      button.hidden = !allowed.includes(button.dataset.action);
    }
    this.updateProgress();
  }

  setBusy(busy) {
    for (const button of this.actions?.querySelectorAll("button") || []) button.disabled = busy;
  }

  async refreshNodes() {
    // Node states come from what the agent reported: re-read the server's view of them.
    const list = document.getElementById("node-list");
    if (!list || !this.deployment) return;
    let deployment;
    try {
      deployment = await get(`/api/deployments/${this.deployment}/`);
    } catch {
      return;
    }
    const seen = new Map((deployment.nodes || []).map((n) => [n.name, n]));
    const stopped = new Set(deployment.live?.stopped || []);
    for (const item of list.querySelectorAll("li[data-node]")) {
      const node = seen.get(item.dataset.node);
      const state = item.querySelector(".live-state");
      let text = deployment.status;
      if (deployment.status === "running") text = stopped.has(item.dataset.node) ? "stopped" : node?.pid ? "running" : "missing";
      else if (!["pending", "deploying", "destroying", "unknown"].includes(deployment.status)) text = deployment.status === "failed" ? "failed" : "stopped";
      state.textContent = text;
      state.className = "live-state " + (text === "running" ? "ok" : ["missing", "failed"].includes(text) ? "down" : "");
      const note = item.querySelector(".node-note");
      if (note) {
        note.textContent = text === "running" ? node?.note || "" : "";
        note.hidden = !note.textContent;
      }
    }
  }

  showDrift(drift, asked) {
    const box = document.getElementById("drift");
    if (!drift) {
      box.textContent = asked ? "The host is comparing its kernel with the plan…" : "";
      return;
    }
    const missing = drift.missing || [];
    const extra = drift.extra || [];
    box.textContent = missing.length || extra.length
      ? `Drift: missing ${missing.join(", ") || "nothing"}; extra ${extra.join(", ") || "nothing"}.`
      : "No drift: the kernel matches the plan.";
  }

  showError(sentence) {
    this.errorBox.hidden = !sentence;
    this.errorBox.textContent = sentence;
  }
}

function span(cls, text) {
  const node = document.createElement("span");
  if (cls) node.className = cls;
  node.textContent = text;
  return node;
}

export function confirmDialog(title, text, yes) {
  const dialog = document.getElementById("confirm");
  if (!dialog?.showModal) return Promise.resolve(window.confirm(`${title}\n\n${text}`));
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = yes;
  dialog.returnValue = "";
  keepFocusInside(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}
