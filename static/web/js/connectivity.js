// The connectivity check of the lab page: one click asks the server to ping every address
// of every other node from each node, and the answer is drawn as a matrix (rows: who
// pings, columns: who is pinged), each cell saying reachable or not and whether that is
// what the lab's networks lead to expect.

import { post } from "labmgr/api.js";

export function startConnectivity({ currentDeployment }) {
  const button = document.getElementById("connectivity-run");
  const box = document.getElementById("connectivity");
  const badge = document.getElementById("lab-status");
  if (!button || !box) return;
  // Only a running deployment can be checked: the server says so too, this avoids the click.
  const follow = () => { button.disabled = badge?.dataset.status !== "running"; };
  if (badge) new MutationObserver(follow).observe(badge, { attributes: true, attributeFilter: ["data-status"] });
  follow();
  button.addEventListener("click", async () => {
    const deployment = currentDeployment();
    if (!deployment) return;
    button.disabled = true;
    box.setAttribute("aria-busy", "true");
    box.replaceChildren(paragraph("hint", "Pinging every pair of nodes; unanswered pings wait one second each…"));
    try {
      draw(box, await post(`/api/deployments/${deployment}/connectivity/`));
    } catch (error) {
      box.replaceChildren(paragraph("error-box", error.message));
    } finally {
      box.removeAttribute("aria-busy");
      follow();
    }
  });
}

function draw(box, report) {
  const cells = new Map();
  for (const probe of report.probes) {
    const key = `${probe.src}\u0000${probe.dst}`;
    if (!cells.has(key)) cells.set(key, []);
    cells.get(key).push(probe);
  }
  const table = document.createElement("table");
  table.className = "grid connectivity";
  table.id = "connectivity-matrix";
  const caption = document.createElement("caption");
  caption.className = "small muted";
  caption.textContent = "Rows ping, columns answer. ✓ reachable, ✗ unreachable; a cell marked “not expected” disagrees with the lab's networks.";
  table.append(caption);
  const head = table.createTHead().insertRow();
  head.append(cell("th", "from \\ to"));
  for (const name of report.nodes) head.append(cell("th", name, "col"));
  const body = table.createTBody();
  for (const src of report.nodes) {
    const row = body.insertRow();
    row.append(cell("th", src, "row"));
    for (const dst of report.nodes) {
      const td = document.createElement("td");
      if (src === dst) td.textContent = "—";
      else {
        const probes = cells.get(`${src}\u0000${dst}`) || [];
        if (!probes.length) td.append(span("muted small", "no address"));
        for (const probe of probes) td.append(verdict(probe));
      }
      row.append(td);
    }
  }
  const surprises = report.probes.filter((p) => p.reachable !== p.expected).length;
  const summary = surprises
    ? paragraph("", `${surprises} of ${report.probes.length} probes are not as expected.`)
    : paragraph("", `All ${report.probes.length} probes are as expected.`);
  summary.id = "connectivity-summary";
  box.replaceChildren(summary, table);
}

function verdict(probe) {
  const as = probe.reachable === probe.expected;
  const item = document.createElement("div");
  item.className = `probe live-state ${as ? "ok" : "down"}`;
  item.dataset.reachable = String(probe.reachable);
  item.dataset.expected = String(probe.expected);
  item.title = `${probe.src} → ${probe.dst} ${probe.address} on ${probe.network}: `
    + `${probe.reachable ? "reachable" : "unreachable"}, ${probe.expected ? "expected reachable" : "expected unreachable"}`;
  item.textContent = `${probe.reachable ? "✓ reachable" : "✗ unreachable"} ${probe.address} (${probe.network})`
    + (as ? "" : " — not expected");
  return item;
}

function cell(tag, text, scope) {
  const node = document.createElement(tag);
  node.textContent = text;
  if (scope) node.scope = scope;
  return node;
}

function span(cls, text) {
  const node = document.createElement("span");
  node.className = cls;
  node.textContent = text;
  return node;
}

function paragraph(cls, text) {
  const node = document.createElement("p");
  if (cls) node.className = cls;
  node.textContent = text;
  return node;
}
