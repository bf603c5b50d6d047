// Live changes of the running lab on its page: each node with its state and the buttons
// that stop, start, restart or kill it; each interface with its link's other end, its
// state and its impairments, and the buttons that set it (or its whole link) down and
// up; a form that sets impairments on an interface, a link or a network. Every change is
// one POST /api/deployments/{id}/live/; the answer and the lab's stream (`deployment.live`)
// redraw the card, so two open pages agree.

import { get, post, refusal } from "labmgr/api.js";

const IMPAIRMENT_KEYS = ["rate", "delay", "jitter", "loss", "duplicate", "corrupt", "reorder"];

export function startOperate({ currentDeployment }) {
  const card = document.getElementById("operate");
  if (!card) return { onLive() {} };
  const canChange = card.dataset.canChange === "true";
  const body = document.getElementById("operate-body");
  const errorBox = document.getElementById("operate-error");
  const form = document.getElementById("operate-form");
  const targetSelect = document.getElementById("operate-target");
  const restore = document.getElementById("operate-restore");
  const badge = document.getElementById("lab-status");
  let state = null;
  let busy = false;

  const running = () => badge?.dataset.status === "running";

  const showError = (sentence) => {
    errorBox.hidden = !sentence;
    errorBox.textContent = sentence;
  };

  const act = async (action) => {
    const deployment = currentDeployment();
    if (!deployment || busy) return;
    busy = true;
    setDisabled(true);
    showError("");
    try {
      await post(`/api/deployments/${deployment}/live/`, action);
      await refresh();
    } catch (error) {
      showError(refusal(error));
    } finally {
      busy = false;
      setDisabled(false);
    }
  };

  const setDisabled = (disabled) => {
    for (const button of card.querySelectorAll("button")) button.disabled = disabled || !running();
  };

  const refresh = async () => {
    const deployment = currentDeployment();
    if (!deployment || !running()) {
      state = null;
      draw();
      return;
    }
    try {
      state = await get(`/api/deployments/${deployment}/live/`);
    } catch (error) {
      showError(error.message);
      return;
    }
    draw();
  };

  const draw = () => {
    if (form) form.hidden = !state;
    if (restore) restore.hidden = !state;
    if (!state) {
      body.replaceChildren(paragraph("muted small", "Live changes are made while the lab runs."));
      return;
    }
    const peers = new Map();
    for (const [a, b] of state.links) {
      peers.set(a, b);
      peers.set(b, a);
    }
    body.replaceChildren(nodesTable(state.nodes), interfacesTable(state.interfaces, peers));
    if (targetSelect) fillTargets(state);
    setDisabled(false);
  };

  const nodesTable = (nodes) => {
    const table = grid("operate-nodes", ["Node", "State", ""]);
    for (const node of nodes) {
      const row = table.tBodies[0].insertRow();
      row.dataset.node = node.node;
      row.append(cell(node.node), stateCell(node.state, node.state === "running"));
      const actions = document.createElement("td");
      if (canChange) {
        const verbs = node.state === "running" ? ["stop", "restart", "kill"] : ["start"];
        for (const verb of verbs) actions.append(button(verb[0].toUpperCase() + verb.slice(1), () => act({ [verb]: node.node }), `${verb} ${node.node}`));
      }
      row.append(actions);
    }
    return table;
  };

  const interfacesTable = (interfaces, peers) => {
    const table = grid("operate-interfaces", ["Interface", "Link to", "State", "Impairments", ""]);
    for (const item of interfaces) {
      const row = table.tBodies[0].insertRow();
      row.dataset.interface = item.interface;
      const said = Object.entries(item.impairments).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
      const impairments = cell(said + (item.changed ? " (changed)" : ""));
      impairments.className = item.changed ? "changed" : "";
      row.append(cell(item.interface), cell(peers.get(item.interface) || "—"), stateCell(item.parked ? "parked" : item.up ? "up" : "down", item.up && !item.parked), impairments);
      const actions = document.createElement("td");
      if (canChange) {
        const verb = item.up ? "down" : "up";
        actions.append(button(item.up ? "Down" : "Up", () => act({ [verb]: item.interface }), `${verb} ${item.interface}`));
        if (peers.has(item.interface)) {
          actions.append(button(item.up ? "Link down" : "Link up", () => act({ [verb]: { link: item.interface } }), `${verb} link ${item.interface}`));
        }
        if (item.changed || !item.up) actions.append(button("Restore", () => act({ restore: item.interface }), `restore ${item.interface}`));
      }
      row.append(actions);
    }
    return table;
  };

  const fillTargets = (current) => {
    const chosen = targetSelect.value;
    const options = [];
    const seen = new Set();
    for (const [a, b] of current.links) options.push([`link:${a}`, `link ${a} — ${b}`]);
    for (const item of current.interfaces) options.push([`interface:${item.interface}`, `interface ${item.interface}`]);
    for (const item of current.interfaces) {
      const network = item.network;
      if (network && !seen.has(network)) {
        seen.add(network);
        options.push([`network:${network}`, `network ${network}`]);
      }
    }
    targetSelect.replaceChildren(...options.map(([value, label]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      return option;
    }));
    if (options.some(([value]) => value === chosen)) targetSelect.value = chosen;
  };

  form?.addEventListener("submit", (event) => {
    event.preventDefault();
    const [kind, ...rest] = targetSelect.value.split(":");
    const action = { [kind]: rest.join(":") };
    for (const key of IMPAIRMENT_KEYS) {
      const value = form.elements[key].value.trim();
      if (value) action[key] = value;
    }
    act({ set: action });
  });
  restore?.addEventListener("click", () => act({ restore: "all" }));
  if (badge) new MutationObserver(refresh).observe(badge, { attributes: true, attributeFilter: ["data-status"] });
  refresh();

  return {
    onLive(event) {
      if (event.live && running()) {
        state = event.live;
        draw();
      }
    },
  };
}

function grid(id, headings) {
  const table = document.createElement("table");
  table.className = "grid operate";
  table.id = id;
  const head = table.createTHead().insertRow();
  for (const heading of headings) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = heading;
    head.append(th);
  }
  table.createTBody();
  return table;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function stateCell(text, ok) {
  const td = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = `live-state ${ok ? "ok" : "down"}`;
  badge.textContent = text;
  td.append(badge);
  return td;
}

function button(label, onClick, name) {
  const node = document.createElement("button");
  node.type = "button";
  node.textContent = label;
  node.setAttribute("aria-label", name);
  node.addEventListener("click", onClick);
  return node;
}

function paragraph(cls, text) {
  const node = document.createElement("p");
  node.className = cls;
  node.textContent = text;
  return node;
}
