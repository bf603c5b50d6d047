// Keeps the dashboard's lab and host statuses current while the page is open.

const EVERY_MS = 5000;

export function startDashboard(url) {
  const refresh = async () => {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) apply(await response.json());
    } catch {
      // offline for a moment: the next round tries again
    }
  };
  setInterval(() => { if (!document.hidden) refresh(); }, EVERY_MS);
}

function apply(state) {
  for (const [id, lab] of Object.entries(state.labs || {})) {
    const badge = document.querySelector(`tr[data-lab="${id}"] .lab-status .status`);
    if (badge) setBadge(badge, "status-" + (lab.status || "none"), lab.status, lab.label);
  }
  for (const [slug, host] of Object.entries(state.hosts || {})) {
    const item = document.querySelector(`li[data-host="${CSS.escape(slug)}"]`);
    if (!item) continue;
    const badge = item.querySelector(".status");
    const label = host.status.charAt(0).toUpperCase() + host.status.slice(1);
    setBadge(badge, "host-" + host.status, host.status, label);
    const load = item.querySelector(".host-load");
    const n = host.deployments;
    load.textContent = `${n} active deployment${n === 1 ? "" : "s"}` + (host.load == null ? "" : ` · load ${host.load.toFixed(2)}`);
  }
}

function setBadge(badge, cls, status, label) {
  if (badge.dataset.status === status) return;
  badge.className = "status " + cls;
  badge.dataset.status = status;
  badge.textContent = label;
}
