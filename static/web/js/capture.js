// The packet capture panel of the lab page: pick a node and one of its interfaces (as the
// agent reported them), an optional filter and bounds, start; the list shows each
// capture's packets and size, refreshed every second while one runs; stop, download the
// .pcap, delete. Errors appear next to the field they are about.

import { get, post, request } from "labmgr/api.js";

const POLL_MS = 1000;
const ACTIVE = new Set(["starting", "running", "stopping"]);

export function startCaptures({ currentDeployment }) {
  const panel = document.getElementById("captures");
  if (!panel) return;
  const canChange = panel.dataset.canChange === "true";
  const list = document.getElementById("capture-list");
  const form = document.getElementById("capture-form");
  const badge = document.getElementById("lab-status");
  let interfaces = new Map(); // node -> [ifname]
  let loadedFor = null;
  let timer = null;

  const running = () => badge?.dataset.status === "running";

  async function loadNodes(deployment) {
    if (!form || loadedFor === deployment) return;
    const body = await get(`/api/deployments/${deployment}/`);
    interfaces = new Map(
      (body.nodes || []).map((n) => [n.name, (n.interfaces || []).map((i) => i.ifname).filter(Boolean)]),
    );
    // Interfaces come with the apply's result: ask again until some have arrived.
    if ([...interfaces.values()].some((names) => names.length)) loadedFor = deployment;
    const nodeSelect = document.getElementById("capture-node");
    nodeSelect.replaceChildren(...[...interfaces.keys()].filter((n) => interfaces.get(n).length).map(option));
    fillInterfaces();
  }

  function fillInterfaces() {
    const node = document.getElementById("capture-node").value;
    document.getElementById("capture-interface").replaceChildren(...(interfaces.get(node) || []).map(option));
  }

  async function refresh() {
    clearTimeout(timer);
    const deployment = currentDeployment();
    if (!deployment) {
      list.replaceChildren(paragraph("hint", "Deploy the lab to capture its traffic."));
      return;
    }
    try {
      if (running()) await loadNodes(deployment);
      const captures = await get(`/api/deployments/${deployment}/captures/`);
      draw(captures);
      if (captures.some((c) => ACTIVE.has(c.state))) timer = setTimeout(refresh, POLL_MS);
    } catch (error) {
      list.replaceChildren(paragraph("error-box", error.message));
    }
    if (form) document.getElementById("capture-start").disabled = !running();
  }

  function draw(captures) {
    if (!captures.length) {
      list.replaceChildren(paragraph("hint", running() ? "No capture yet." : "No capture of this deployment."));
      return;
    }
    const table = document.createElement("table");
    table.className = "grid captures";
    table.id = "capture-table";
    const head = table.createTHead().insertRow();
    for (const title of ["Where", "Filter", "State", "Packets", "Size", ""]) head.append(cell("th", title));
    const body = table.createTBody();
    for (const capture of captures) {
      const row = body.insertRow();
      row.dataset.capture = String(capture.id);
      row.dataset.state = capture.state;
      row.append(cell("td", `${capture.node} ${capture.interface}`));
      row.append(cell("td", capture.filter || "(everything)"));
      const state = cell("td", capture.state);
      state.className = `capture-state live-state ${capture.state === "failed" ? "down" : capture.state === "running" ? "ok" : ""}`;
      if (capture.reason) state.title = capture.reason;
      row.append(state);
      row.append(cell("td", String(capture.packets), "capture-packets"));
      row.append(cell("td", size(capture.bytes), "capture-bytes"));
      row.append(actions(capture));
      if (capture.reason && !ACTIVE.has(capture.state)) {
        const note = body.insertRow();
        const td = cell("td", capture.reason);
        td.colSpan = 6;
        td.className = "small muted";
        note.append(td);
      }
    }
    list.replaceChildren(table);
  }

  function actions(capture) {
    const td = document.createElement("td");
    td.className = "actions";
    const base = `/api/deployments/${capture.deployment}/captures/${capture.id}`;
    if (capture.pcap_url) {
      const link = document.createElement("a");
      link.className = "button";
      link.href = `${base}/pcap/`;
      link.textContent = "Download .pcap";
      link.setAttribute("download", "");
      td.append(link);
    }
    if (canChange && (capture.state === "starting" || capture.state === "running")) {
      td.append(button("Stop", () => post(`${base}/stop/`)));
    }
    if (canChange && !ACTIVE.has(capture.state)) {
      td.append(button("Delete", () => request("DELETE", `${base}/`)));
    }
    return td;
  }

  function button(label, act) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await act();
        refresh();
      } catch (error) {
        b.disabled = false;
        b.closest("td").append(paragraph("field-error", error.message));
      }
    });
    return b;
  }

  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const deployment = currentDeployment();
    if (!deployment) return;
    clearErrors();
    const data = new FormData(form);
    const body = { node: data.get("node"), interface: data.get("interface"), filter: data.get("filter") || "" };
    if (data.get("max_mib")) body.max_bytes = Math.round(Number(data.get("max_mib")) * 1048576);
    if (data.get("max_seconds")) body.max_seconds = Number(data.get("max_seconds"));
    const start = document.getElementById("capture-start");
    start.disabled = true;
    try {
      await post(`/api/deployments/${deployment}/captures/`, body);
    } catch (error) {
      showErrors(error);
    }
    refresh();
  });

  document.getElementById("capture-node")?.addEventListener("change", fillInterfaces);

  function clearErrors() {
    form.querySelectorAll(".field-error").forEach((e) => e.remove());
    form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
    document.getElementById("capture-error").hidden = true;
  }

  function showErrors(error) {
    const fields = { node: "capture-node", interface: "capture-interface", filter: "capture-filter",
      max_bytes: "capture-max-mib", max_seconds: "capture-max-seconds" };
    let placed = false;
    for (const [field, messages] of Object.entries(error.errors || {})) {
      const input = document.getElementById(fields[field] || "");
      if (!input) continue;
      input.setAttribute("aria-invalid", "true");
      const note = paragraph("field-error", messages.join(" "));
      note.dataset.field = field;
      input.closest("label").append(note);
      placed = true;
    }
    if (!placed) {
      const box = document.getElementById("capture-error");
      box.textContent = error.message;
      box.hidden = false;
    }
  }

  if (badge) new MutationObserver(refresh).observe(badge, { attributes: true, attributeFilter: ["data-status"] });
  refresh();
}

function option(text) {
  const o = document.createElement("option");
  o.textContent = text;
  return o;
}

function cell(tag, text, className) {
  const c = document.createElement(tag);
  c.textContent = text;
  if (className) c.className = className;
  return c;
}

function paragraph(className, text) {
  const p = document.createElement("p");
  p.className = className;
  p.textContent = text;
  return p;
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
