// The topology view (Cytoscape): nodes coloured by the state the agent reported, networks
// drawn by driver (a switch for bridge, a cloud for overlay, ...), one edge per
// attachment labelled with its interface, addresses (IPv4, then IPv6), VLANs and live
// rate, and one edge from node to node per point-to-point link, each end labelled with its
// interface and addresses.

import cytoscape from "cytoscape";
import { get, post, refusal } from "labmgr/api.js";
import { openStream } from "labmgr/live.js";

const STATE_COLOURS = {
  running: "#1a7f37", pending: "#0b5cad", deploying: "#0b5cad", destroying: "#8a5300",
  unknown: "#8a5300", failed: "#b42318", missing: "#b42318", stopped: "#8b97a2",
};
const svg = (body) => "data:image/svg+xml;utf8," + encodeURIComponent(
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 40">${body}</svg>`);
const ICONS = {
  // a switch: a box with ports
  bridge: svg('<rect x="2" y="8" width="60" height="24" rx="3" fill="#e0f1f0" stroke="#0d6e6e" stroke-width="2"/>' +
    [10, 20, 30, 40, 50].map((x) => `<rect x="${x}" y="22" width="6" height="5" fill="#0d6e6e"/>`).join("") +
    '<path d="M14 15h36M44 12l6 3-6 3M20 12l-6 3 6 3" stroke="#0d6e6e" stroke-width="2" fill="none"/>'),
  // a cloud
  overlay: svg('<path d="M16 34h34a10 10 0 0 0 0-20 14 14 0 0 0-26-3A11 11 0 0 0 16 34z" fill="#eef2fb" stroke="#0b5cad" stroke-width="2"/>'),
};
const SHAPES = { bridge: "round-rectangle", overlay: "ellipse", macvlan: "diamond", ipvlan: "hexagon", host: "barrel", none: "octagon" };

export function startTopology({ graph, page, canChange }) {
  const cy = cytoscape({
    container: document.getElementById("graph"),
    elements: elements(graph),
    style: STYLE,
    layout: { name: graph.nodes.length + graph.networks.length > 40 ? "grid" : "cose", animate: false, padding: 30, nodeRepulsion: () => 9000, idealEdgeLength: () => 90 },
    wheelSensitivity: 0.3,
  });
  const details = document.getElementById("details");
  let shown = null;
  let live = null; // the running lab's live state (GET /api/deployments/{id}/live/)
  const controls = { canChange: canChange && page.status === "running", act: (action) => act(action) };
  const show = (element) => {
    shown = element;
    const kind = element.data("kind");
    const data = element.data();
    details.replaceChildren(...(kind === "node" ? nodeDetails(data, page, canChange, live, controls) : kind === "peer-link" ? linkDetails(data, live, controls) : networkDetails(data)));
    cy.elements().unselect();
    element.select();
  };
  const refresh = async () => {
    if (page.status !== "running" || !page.deployment) return;
    try {
      live = await get(`/api/deployments/${page.deployment}/live/`);
    } catch {
      return;
    }
    paintLive(cy, live);
    if (shown) show(shown);
  };
  const act = async (action) => {
    const box = document.getElementById("live-error");
    try {
      await post(`/api/deployments/${page.deployment}/live/`, action);
      if (box) box.hidden = true;
      await refresh();
    } catch (error) {
      if (box) {
        box.textContent = refusal(error);
        box.hidden = false;
      }
    }
  };
  refresh();
  cy.on("tap", "node, edge.peer-link", (event) => show(event.target));
  document.getElementById("topology-list").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-select]");
    if (button) show(cy.getElementById(button.dataset.select));
  });
  const state = document.getElementById("stream-state");
  openStream(page.urls.stream, {
    handlers: {
      "metrics.sample": (event) => showRates(cy, event.samples),
      "deployment.status": () => setTimeout(() => location.reload(), 800),
      "deployment.live": (event) => {
        if (event.deployment !== page.deployment || !event.live) return;
        live = event.live;
        paintLive(cy, live);
        if (shown) show(shown);
      },
    },
    onState: (s) => {
      state.textContent = s === "live" ? "live" : s === "refused" ? "not allowed to watch" : "reconnecting…";
      state.className = "live-state " + (s === "live" ? "ok" : "down");
    },
  });
  window.labTopology = cy; // for the curious, from the browser's console
  return cy;
}

function elements(graph) {
  const items = [];
  for (const net of graph.networks) {
    items.push({ data: { id: `net:${net.name}`, kind: "network", label: `${net.name}\n${net.subnet || net.driver}`, ...net }, classes: `network ${net.driver}` });
  }
  for (const node of graph.nodes) {
    items.push({ data: { id: `node:${node.name}`, kind: "node", label: node.name, colour: STATE_COLOURS[node.state] || "#8b97a2", ...node }, classes: "lab-node" });
  }
  for (const link of graph.links) {
    const label = portLabel(link);
    items.push({ data: {
      id: `link:${link.node}:${link.network}`, source: `node:${link.node}`, target: `net:${link.network}`,
      label, base: label, ...link,
    } });
  }
  for (const link of graph.peer_links || []) {
    const [a, b] = link.ends;
    items.push({ data: {
      id: link.id, kind: "peer-link", source: `node:${a.node}`, target: `node:${b.node}`,
      sourceLabel: endLabel(a), targetLabel: endLabel(b), sourceBase: endLabel(a), targetBase: endLabel(b),
      label: impairmentsLabel(a, b), ...link,
    }, classes: "peer-link" });
  }
  return items;
}

// A port as its edge says it: the interface and IPv4 address, the IPv6 address beside
// them, then its VLANs ("vlan 10", "trunk 10,20").
function portLabel(port) {
  return [[port.ifname, port.ipv4].filter(Boolean).join(" "), port.ipv6, port.vlans].filter(Boolean).join("\n");
}

// An end of a link as its edge says it: the interface, then its addresses.
function endLabel(end) {
  return [end.ifname, end.ipv4, end.ipv6].filter(Boolean).join("\n");
}

function impairmentsText(impairments) {
  return Object.entries(impairments || {}).map(([k, v]) => `${k} ${v}`).join(", ");
}

function impairmentsLabel(a, b) {
  const [ta, tb] = [impairmentsText(a.impairments), impairmentsText(b.impairments)];
  if (ta === tb) return ta;
  return [ta && `${a.ifname}→ ${ta}`, tb && `${b.ifname}→ ${tb}`].filter(Boolean).join("\n");
}

function showRates(cy, samples) {
  for (const sample of samples || []) {
    for (const iface of sample.interfaces || []) {
      const rates = `↓${kbit(iface.rx_bps)} ↑${kbit(iface.tx_bps)}`;
      cy.edges().filter((e) => e.data("node") === sample.node && e.data("ifname") === iface.ifname).forEach((edge) => {
        edge.data("label", `${edge.data("base")}\n${rates}`);
      });
      // A link's end is an interface of its node like any other.
      cy.edges(".peer-link").forEach((edge) => {
        edge.data("ends").forEach((end, i) => {
          if (end.node !== sample.node || end.ifname !== iface.ifname) return;
          const side = i === 0 ? "source" : "target";
          edge.data(`${side}Label`, `${edge.data(`${side}Base`)}\n${rates}`);
        });
      });
    }
  }
}

function kbit(bps) {
  const v = Number(bps) || 0;
  return v >= 1e6 ? `${(v / 1e6).toFixed(1)} Mbit/s` : `${(v / 1e3).toFixed(1)} kbit/s`;
}

function nodeDetails(node, page, canChange, live, controls) {
  const out = [heading(`Node ${node.name}`)];
  const facts = [["state", node.state], ["host", node.host || "chosen at deploy"], ["pid", node.pid ?? "—"], ["command", (node.command || []).join(" ") || "init only"]];
  for (const [k, v] of Object.entries(node.limits || {})) facts.push([`limit ${k}`, typeof v === "object" ? JSON.stringify(v) : v]);
  for (const port of node.ports || []) {
    facts.push([`on ${port.network}`, [port.ifname, port.ipv4, port.ipv6, port.vlans].filter(Boolean).join(" ") || "automatic"]);
  }
  for (const link of node.outside || []) facts.push([link.ifname, [link.addresses, `to ${link.far}`].filter(Boolean).join(" ")]);
  for (const iface of node.interfaces || []) facts.push([iface.ifname, [iface.mac, ...(iface.addresses || [])].filter(Boolean).join(" ")]);
  out.push(dl(facts));
  if (canChange && node.state === "running") {
    const link = document.createElement("a");
    link.href = `${page.urls.terminals}?node=${encodeURIComponent(node.name)}`;
    link.className = "button primary";
    link.textContent = `Open a terminal on ${node.name}`;
    out.push(link);
  }
  const now = (live?.nodes || []).find((n) => n.node === node.name);
  if (controls?.canChange && now) {
    const row = document.createElement("div");
    row.className = "actions";
    const verbs = now.state === "stopped" ? ["start"] : ["stop", "restart", "kill"];
    for (const verb of verbs) {
      row.append(actionButton(`${verb[0].toUpperCase()}${verb.slice(1)} ${node.name}`, () => controls.act({ [verb]: node.name })));
    }
    const error = document.createElement("div");
    error.id = "live-error";
    error.className = "error-box";
    error.setAttribute("role", "alert");
    error.hidden = true;
    out.push(paragraphOf(`Now: ${now.state}`), row, error);
  }
  return out;
}

function paragraphOf(text) {
  const p = document.createElement("p");
  p.className = "small";
  p.textContent = text;
  return p;
}

function linkDetails(link, live, controls) {
  const facts = [["MTU", link.mtu ?? "—"]];
  const now = new Map((live?.interfaces || []).map((i) => [i.interface, i]));
  for (const end of link.ends) {
    const name = `${end.node}:${end.ifname}`;
    const current = now.get(name);
    facts.push([name, [end.ipv4, end.ipv6].filter(Boolean).join(" ") || "no address"]);
    if (current) {
      facts.push([`${name} now`, current.parked ? "parked (its node is stopped)" : current.up ? "up" : "down"]);
      facts.push([`${name} sends with`, (impairmentsText(current.impairments) || "no impairments") + (current.changed ? " (changed live)" : "")]);
    } else {
      facts.push([`${name} sends with`, impairmentsText(end.impairments) || "no impairments"]);
    }
  }
  const [a, b] = link.ends;
  const out = [heading(`Link ${a.node}:${a.ifname} - ${b.node}:${b.ifname}`), dl(facts)];
  if (controls.canChange && live) {
    const first = `${a.node}:${a.ifname}`;
    const up = link.ends.every((end) => now.get(`${end.node}:${end.ifname}`)?.up !== false);
    const row = document.createElement("div");
    row.className = "actions";
    row.append(
      actionButton(up ? "Link down" : "Link up", () => controls.act({ [up ? "down" : "up"]: { link: first } })),
      actionButton("Restore the link", () => controls.act({ restore: { link: first } })),
    );
    const form = document.createElement("form");
    form.className = "capture-form";
    form.id = "link-impairments";
    const inputs = ["rate", "delay", "jitter", "loss"].map((key) => {
      const label = document.createElement("label");
      label.textContent = key[0].toUpperCase() + key.slice(1) + " ";
      const input = document.createElement("input");
      input.name = key;
      input.autocomplete = "off";
      input.placeholder = { rate: "10mbit", delay: "20ms", jitter: "2ms", loss: "30%" }[key];
      label.append(input);
      return label;
    });
    const apply = actionButton("Set on the link", () => {});
    apply.type = "submit";
    form.append(...inputs, apply);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const action = { link: first };
      for (const input of form.querySelectorAll("input")) if (input.value.trim()) action[input.name] = input.value.trim();
      controls.act({ set: action });
    });
    const error = document.createElement("div");
    error.id = "live-error";
    error.className = "error-box";
    error.setAttribute("role", "alert");
    error.hidden = true;
    out.push(row, form, error);
  }
  return out;
}

// The live state on the graph: a link with an end down is dashed red, one changed live
// carries its impairments now; a stopped node is grey.
function paintLive(cy, live) {
  const now = new Map((live.interfaces || []).map((i) => [i.interface, i]));
  const stopped = new Set((live.nodes || []).filter((n) => n.state === "stopped").map((n) => n.node));
  cy.edges(".peer-link").forEach((edge) => {
    const [ea, eb] = edge.data("ends");
    const [a, b] = [ea, eb].map((end) => now.get(`${end.node}:${end.ifname}`));
    edge.toggleClass("link-down", [a, b].some((i) => i && (!i.up || i.parked)));
    if (a && b) {
      edge.data("label", impairmentsLabel({ ifname: ea.ifname, impairments: a.impairments }, { ifname: eb.ifname, impairments: b.impairments }));
    }
  });
  cy.nodes(".lab-node").forEach((node) => {
    node.toggleClass("stopped", stopped.has(node.data("name")));
  });
  document.getElementById("graph").dataset.live = JSON.stringify({ down: cy.edges(".link-down").map((e) => e.id()), stopped: [...stopped] });
}

function actionButton(text, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = text;
  button.addEventListener("click", onClick);
  return button;
}

function networkDetails(net) {
  const facts = [["driver", net.driver], ["subnet", net.subnet || "—"]];
  if (net.subnet6) facts.push(["IPv6 subnet", net.subnet6]);
  if (net.gateway6) facts.push(["IPv6 gateway", `${net.gateway6} (held by the host, NAT66 unless internal)`]);
  if (net.vlan_filtering) facts.push(["VLAN filtering", "on: each port in its own VLANs"]);
  if (net.vlan_id) facts.push(["VLAN id", net.vlan_id]);
  return [heading(`Network ${net.name}`), dl(facts)];
}

function heading(text) {
  const h = document.createElement("h3");
  h.textContent = text;
  return h;
}

function dl(pairs) {
  const list = document.createElement("dl");
  list.className = "facts";
  for (const [k, v] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = String(v);
    list.append(dt, dd);
  }
  return list;
}

const STYLE = [
  { selector: "node", style: { label: "data(label)", "text-wrap": "wrap", "font-size": 11, "font-family": "system-ui, sans-serif", color: "#17212b", "text-valign": "bottom", "text-margin-y": 4 } },
  { selector: "node.lab-node", style: { shape: "round-rectangle", width: 54, height: 38, "background-color": "data(colour)", "border-width": 2, "border-color": "#17212b", "text-valign": "center", "text-margin-y": 0, color: "#fff", "font-weight": 600, "text-outline-width": 0 } },
  { selector: "node.network", style: { width: 64, height: 40, "background-color": "#eef2f5", "border-width": 2, "border-color": "#56636f" } },
  ...Object.entries(SHAPES).map(([driver, shape]) => ({ selector: `node.network.${driver}`, style: { shape } })),
  { selector: "node.network.bridge", style: { "background-image": ICONS.bridge, "background-fit": "contain", "background-opacity": 0, "border-width": 0, shape: "rectangle" } },
  { selector: "node.network.overlay", style: { "background-image": ICONS.overlay, "background-fit": "contain", "background-opacity": 0, "border-width": 0, width: 74, height: 46 } },
  { selector: "node.network.macvlan, node.network.ipvlan", style: { "background-color": "#f3ecfb", "border-color": "#6f42c1" } },
  { selector: "node.network.none", style: { "background-color": "#eceff2", "border-style": "dashed" } },
  { selector: "edge", style: { width: 2, "line-color": "#8b97a2", label: "data(label)", "font-size": 9, "text-wrap": "wrap", "text-background-color": "#fbfcfd", "text-background-opacity": 0.9, "text-background-padding": 2, color: "#33404b", "curve-style": "bezier" } },
  { selector: "edge.peer-link.link-down", style: { "line-color": "#b42318", "line-style": "dashed" } },
  { selector: "node.lab-node.stopped", style: { "background-color": "#8b97a2" } },
  { selector: "edge.peer-link", style: { width: 3, "line-color": "#0d6e6e", "line-style": "solid", "source-label": "data(sourceLabel)", "target-label": "data(targetLabel)", "source-text-offset": 34, "target-text-offset": 34, "font-size": 9, "text-wrap": "wrap" } },
  { selector: ":selected", style: { "border-color": "#f0a500", "border-width": 4, "line-color": "#f0a500" } },
];
