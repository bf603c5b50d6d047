// Keeps the dashboard current while it is open: the user's stream (`ws/me/`) pushes each
// lab's deployment status, each host's state and the user's reservation warnings, and the
// rows change in place. While the stream is down (it reconnects with back-off) a slow poll
// of the status page stands in; after a reconnect one poll catches up on what was missed.

import { openStream } from "labmgr/live.js";

const SLOW_POLL_MS = 30000;
const RECENT = 8; // as many deployments as the server lists

export function startDashboard(statusUrl, streamPath = "/ws/me/") {
  const state = document.getElementById("dashboard-live");
  let poller = null;
  const refresh = async () => {
    try {
      const response = await fetch(statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) applyState(await response.json());
    } catch {
      // offline for a moment: the next round tries again
    }
  };
  const slowPoll = (on) => {
    if (on && poller === null) poller = setInterval(() => { if (!document.hidden) refresh(); }, SLOW_POLL_MS);
    if (!on && poller !== null) { clearInterval(poller); poller = null; }
  };
  return openStream(streamPath, {
    handlers: {
      "deployment.status": onDeploymentStatus,
      "host.status": onHostStatus,
      "reservation.warning": onReservationWarning,
      "reservation.ended": onReservationEnded,
    },
    onState: (s) => {
      slowPoll(s !== "live");
      if (!state) return;
      state.dataset.state = s;
      state.textContent = { live: "live", reconnecting: "reconnecting…", refused: "not live: log in again" }[s] || s;
      state.className = "live-state " + (s === "live" ? "ok" : "down");
    },
    onReconnect: refresh,
  });
}

function onDeploymentStatus(event) {
  const badge = document.querySelector(`tr[data-lab="${event.lab}"] .lab-status .status`);
  if (badge) setBadge(badge, "status-" + event.status, event.status, event.label);
  const list = document.querySelector("ol.deployments");
  if (!list) return;
  let item = list.querySelector(`li[data-deployment="${event.deployment}"]`);
  if (!item) item = addDeployment(list, event);
  const status = item?.querySelector(".status");
  if (status) setBadge(status, "status-" + event.status, event.status, event.label);
}

function addDeployment(list, event) {
  // A deployment started since the page was drawn: named after its lab's row.
  const link = document.querySelector(`tr[data-lab="${event.lab}"] th a`);
  if (!link) return null;
  const item = document.createElement("li");
  item.dataset.deployment = String(event.deployment);
  const anchor = document.createElement("a");
  anchor.href = link.getAttribute("href");
  anchor.textContent = link.textContent;
  const badge = document.createElement("span");
  const when = document.createElement("span");
  when.className = "muted small";
  when.textContent = (event.host ? `on ${event.host} · ` : "") + "just now";
  item.append(anchor, ` #${event.deployment} `, badge, " ", when);
  list.prepend(item);
  while (list.children.length > RECENT) list.lastElementChild.remove();
  list.closest("section")?.querySelector(".empty")?.remove();
  return item;
}

function onHostStatus(event) {
  const item = document.querySelector(`li[data-host="${CSS.escape(event.host)}"]`);
  if (!item) return;
  const label = event.status.charAt(0).toUpperCase() + event.status.slice(1);
  setBadge(item.querySelector(".status"), "host-" + event.status, event.status, label);
  if (event.deployments !== undefined) setLoad(item, event.deployments, event.load);
}

function onReservationWarning(event) {
  const row = document.querySelector(`tr[data-reservation="${event.reservation}"]`);
  row?.classList.add("ending");
  const minutes = Math.max(1, Math.round(event.seconds_left / 60));
  announce(`Your reservation of ${event.host} ends in ${minutes} minute${minutes === 1 ? "" : "s"}; its labs are then destroyed.`);
}

function onReservationEnded(event) {
  const row = document.querySelector(`tr[data-reservation="${event.reservation}"]`);
  const countdown = row?.querySelector(".countdown");
  if (countdown) {
    countdown.removeAttribute("data-countdown");
    countdown.textContent = event.status === "cancelled" ? "Cancelled" : "Ended";
  }
  row?.classList.add("ended");
  announce(`Your reservation of ${event.host} has ended.`);
}

function announce(text) {
  const box = document.getElementById("dashboard-alert");
  if (!box) return;
  box.textContent = text;
  box.hidden = false;
}

function applyState(state) {
  for (const [id, lab] of Object.entries(state.labs || {})) {
    const badge = document.querySelector(`tr[data-lab="${id}"] .lab-status .status`);
    if (badge) setBadge(badge, "status-" + (lab.status || "none"), lab.status, lab.label);
  }
  for (const [slug, host] of Object.entries(state.hosts || {})) {
    const item = document.querySelector(`li[data-host="${CSS.escape(slug)}"]`);
    if (!item) continue;
    const label = host.status.charAt(0).toUpperCase() + host.status.slice(1);
    setBadge(item.querySelector(".status"), "host-" + host.status, host.status, label);
    setLoad(item, host.deployments, host.load);
  }
}

function setLoad(item, n, load) {
  const text = item.querySelector(".host-load");
  if (!text) return;
  text.textContent = `${n} active deployment${n === 1 ? "" : "s"}` + (load == null ? "" : ` · load ${load.toFixed(2)}`);
}

function setBadge(badge, cls, status, label) {
  if (!badge || badge.dataset.status === status) return;
  badge.className = "status " + cls;
  badge.dataset.status = status;
  badge.textContent = label;
}
