// The lab editor: forms for networks, nodes and links, and the labfile's
// YAML, kept in step.
//
// The YAML text is what is saved; the forms edit the parsed tree and write the YAML back.
// While the user types, the server validates the text (the same labplan validation the
// save runs) and each error is shown next to the field its path names, or under the YAML
// when no field shows that path. The drivers, the options each takes and their modes come
// from the labfile's JSON Schema, which labplan generates from the drivers themselves.

import yaml from "js-yaml";
import { get, post } from "labmgr/api.js";
import { LINK_TYPES, TYPE_KEYS, farSide, isPort, retype, trimAddresses } from "labmgr/ports.js";

const SCHEMA_URL = "/api/labfile.schema.json";
const NAMESPACES = ["mnt", "uts", "ipc", "pid", "cgroup", "user"];
const LIMITS = [
  ["cpus", "CPUs", "e.g. 0.5"],
  ["cpu_weight", "CPU weight", "1–10000"],
  ["memory", "Memory", "e.g. 256M"],
  ["memory_swap", "Swap", "e.g. 0"],
  ["pids", "Processes", "e.g. 128"],
  ["io_weight", "IO weight", "1–10000"],
];
// Impairments of what an interface sends; the last three are labfile 2's.
const IMPAIRMENTS = [
  ["rate", "Rate", "e.g. 10mbit"],
  ["delay", "Delay", "e.g. 20ms"],
  ["jitter", "Jitter", "e.g. 5ms"],
  ["loss", "Loss", "e.g. 0.5%"],
  ["duplicate", "Duplicate", "e.g. 1%"],
  ["corrupt", "Corrupt", "e.g. 0.1%"],
  ["reorder", "Reorder", "e.g. 25%"],
];
const V2_IMPAIRMENTS = ["duplicate", "corrupt", "reorder"];
// Keys of a network or an attachment that only labfile 2 has: IPv6 and VLANs.
const V2_KEYS = ["subnet6", "gateway6", "vlan_filtering", "id", "ipv6", "vlan", "vlans", "network_mode"];
// What a network's attachment takes when the page does not say (labplan's table does).
const ADDRESSED = ["bridge", "macvlan", "ipvlan", "overlay", "vlan"];
const ATTACHMENT_OPTIONS = Object.fromEntries(ADDRESSED.map((d) => [d, d === "bridge" ? ["ipv4", "ipv6", "vlan", "vlans"] : ["ipv4", "ipv6"]]));
const HOST_SOURCE = "host:"; // a mount's source select: a path of the host, not a volume
const BOTH = "both";
const EACH = "each";
const CHECK_DELAY_MS = 350;

export function startEditor(opts) {
  const editor = new Editor(opts);
  editor.start();
  return editor;
}

class Editor {
  constructor({ form, textarea, formView, validity, errorList, checkUrl, schemaUrl, initialErrors, attachmentOptions }) {
    Object.assign(this, { form, textarea, formView, validity, errorList, checkUrl });
    this.attachmentOptions = attachmentOptions || ATTACHMENT_OPTIONS;
    this.schemaUrl = schemaUrl || SCHEMA_URL;
    this.drivers = null;
    this.tree = null;
    this.errors = initialErrors || {};
    this.timer = null;
    this.checking = 0;
    this.linkModes = []; // per link: BOTH or EACH, as the user last chose
  }

  async start() {
    try {
      this.drivers = driverForms(await get(this.schemaUrl));
    } catch (error) {
      // The forms need the drivers; the YAML stays editable and is still checked.
      this.formView.replaceChildren(el("p", { class: "muted" }, `The forms cannot be shown: ${error.message} The YAML on the right holds the whole labfile and can be edited directly.`));
    }
    this.parseText();
    this.renderForm();
    this.showErrors();
    this.textarea.addEventListener("input", () => {
      if (this.parseText()) this.renderForm();
      this.scheduleCheck();
    });
    this.formView.addEventListener("input", (event) => this.onField(event.target, false));
    this.formView.addEventListener("change", (event) => this.onField(event.target, true));
    this.formView.addEventListener("click", (event) => this.onClick(event));
    if (Object.keys(this.errors).length === 0) this.scheduleCheck(0);
  }

  // --- text <-> tree ------------------------------------------------------------------

  parseText() {
    try {
      const tree = yaml.load(this.textarea.value);
      if (tree && typeof tree === "object" && !Array.isArray(tree)) {
        this.tree = tree;
        return true;
      }
    } catch {
      // the server names the YAML error; the forms keep the last readable tree
    }
    return false;
  }

  writeText() {
    const text = yaml.dump(this.tree, { lineWidth: 100, noRefs: true, flowLevel: -1 });
    keepingScroll(() => { this.textarea.value = text; });
    this.scheduleCheck();
  }

  // --- validation ---------------------------------------------------------------------

  scheduleCheck(delay = CHECK_DELAY_MS) {
    clearTimeout(this.timer);
    this.setValidity("busy", "Checking…");
    this.timer = setTimeout(() => this.check(), delay);
  }

  async check() {
    const ticket = ++this.checking;
    try {
      const result = await post(this.checkUrl, { text: this.textarea.value });
      if (ticket !== this.checking) return; // a newer check is on its way
      this.errors = result.errors || {};
      this.showErrors();
    } catch (error) {
      if (ticket === this.checking) this.setValidity("bad", error.message);
    }
  }

  setValidity(kind, sentence) {
    keepingScroll(() => {
      this.validity.className = "validity " + kind;
      this.validity.textContent = sentence;
    });
  }

  showErrors() {
    for (const old of this.formView.querySelectorAll(".field-error")) old.remove();
    for (const input of this.formView.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
    const unplaced = [];
    let n = 0;
    for (const [path, messages] of Object.entries(this.errors)) {
      for (const message of messages) {
        n += 1;
        if (!this.placeError(path, message, n)) unplaced.push([path, message]);
      }
    }
    if (n === 0) this.setValidity("ok", "✓ Valid labfile");
    else this.setValidity("bad", `${n} problem${n === 1 ? "" : "s"}`);
    this.errorList.replaceChildren();
    if (n === 0) return;
    const list = el("ul", { class: "errors" });
    for (const [path, messages] of Object.entries(this.errors)) {
      for (const message of messages) {
        const item = el("li");
        item.append(el("code", {}, path), `: ${message}`);
        list.append(item);
      }
    }
    this.errorList.append(list);
    this.unplaced = unplaced;
  }

  // An error goes under the input of its path, else under the nearest enclosing field.
  placeError(path, message, n) {
    let target = null;
    for (let p = path; p && !target; p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "") {
      target = this.formView.querySelector(`[data-path="${CSS.escape(p)}"]`);
    }
    if (!target) return false;
    target.closest("details")?.setAttribute("open", "");
    const note = el("p", { class: "field-error", id: `error-${n}` }, message);
    if (target.matches("input, select, textarea")) {
      target.setAttribute("aria-invalid", "true");
      target.setAttribute("aria-describedby", note.id);
      // Inside the field's own box, so a row of fields keeps its layout.
      const field = target.closest(".field");
      if (field) field.append(note);
      else (target.closest("label.check") || target).after(note);
    } else {
      target.querySelector(".fields")?.prepend(note) ?? target.append(note);
    }
    return true;
  }

  // --- form -> tree -------------------------------------------------------------------

  onField(input, committed) {
    const path = input.dataset.path;
    if (!path || !this.tree) return;
    if (input.dataset.rename) {
      if (committed) this.rename(input.dataset.rename, input.value.trim());
      return;
    }
    const kind = input.dataset.kind || "text";
    const keys = path.split(".");
    if (kind.startsWith("link-")) {
      this.onLinkField(input, kind, committed);
      return;
    }
    if (kind === "impairment") {
      setPath(this.tree, keys, fieldValue(input.value, "text"));
      // An attachment's own impairments and the newer keys are labfile 2's.
      if (keys[0] === "nodes" || V2_IMPAIRMENTS.includes(keys[keys.length - 1])) this.ensureVersion2();
    } else if (kind === "mount-source") {
      const mount = this.tree.nodes[keys[1]].mounts[Number(keys[3])];
      delete mount.volume;
      delete mount.host;
      if (input.value === HOST_SOURCE) mount.host = "";
      else mount.volume = input.value;
      this.ensureVersion2();
    } else if (keys[2] === "mounts" && keys[4] === "host" && !("host" in (getPath(this.tree, keys.slice(0, 4)) || {}))) {
      // The host path field of a mount just switched to a volume, committing as it goes.
      return;
    } else if (kind === "attach") {
      this.attach(keys[1], input.dataset.network, input.checked);
    } else if (kind === "namespace") {
      this.setNamespace(keys[1], keys[3], input.checked);
    } else if (kind === "bool") {
      setPath(this.tree, keys, input.checked ? true : undefined);
    } else {
      setPath(this.tree, keys, fieldValue(input.value, kind));
    }
    const last = keys[keys.length - 1];
    if (kind === "driver") {
      this.keepDriverOptions(keys[1]);
      if (input.value === "vlan") this.ensureVersion2();
    } else if (last === "network_mode" && keys[0] === "nodes" && input.value) {
      // In another node's namespace a node has no networks or routes of its own: they
      // go, as the options a driver does not take go when the driver changes.
      delete this.tree.nodes[keys[1]].networks;
      delete this.tree.nodes[keys[1]].routes;
      this.ensureVersion2();
    } else if (V2_KEYS.includes(last) && getPath(this.tree, keys) !== undefined) {
      this.ensureVersion2();
    }
    this.writeText();
    // A driver, an attachment and a bridge's VLAN filtering decide which fields show.
    if (committed && (["driver", "attach", "mount-source"].includes(kind) || ["vlan_filtering", "network_mode"].includes(last))) this.rerender();
  }

  // The form again, now, with the focus where it was (on the select or checkbox just
  // used): the fields that depend on it appear without the user leaving it.
  rerender() {
    const active = this.formView.contains(document.activeElement) ? document.activeElement : null;
    const path = active?.dataset.path;
    const kind = active?.dataset.kind;
    this.renderForm(true);
    this.showErrors();
    if (!path) return;
    const again = [...this.formView.querySelectorAll(`[data-path="${CSS.escape(path)}"]`)].find((e) => e.dataset.kind === kind && e.tagName === active.tagName);
    again?.focus();
  }

  // Links and per-attachment impairments need `labfile: 2`; the form says it for the user.
  ensureVersion2() {
    if (!(Number(this.tree.labfile) >= 2)) this.tree.labfile = 2;
  }

  onLinkField(input, kind, committed) {
    const index = Number(input.dataset.link);
    const link = this.tree.links?.[index];
    if (!link || typeof link !== "object") return;
    const end = Number(input.dataset.end);
    const value = input.value.trim();
    if (kind === "link-type") {
      const [node] = linkEnds(link).map((e) => e.node);
      const other = Object.keys(this.tree.nodes || {}).find((n) => n !== node) || node;
      retype(link, value, `${other}:${freeIfname(this.tree, other, link.endpoints || [])}`);
      const [bridge] = this.bridges();
      if (value === "network" && !link.network && bridge) link.network = bridge;
    } else if (kind === "link-node" || kind === "link-ifname") {
      const ends = linkEnds(link);
      const old = endpointOf(ends[end]);
      ends[end][kind === "link-node" ? "node" : "ifname"] = value;
      link.endpoints = ends.slice(0, isPort(link) ? 1 : 2).map(endpointOf);
      renameImpairmentEnd(link, old, link.endpoints[end]);
    } else if (kind === "link-address") {
      const family = input.dataset.family;
      const pair = Array.isArray(link[family]) ? [...link[family]] : ["", ""];
      pair[end] = value;
      if (pair.every((a) => !a)) delete link[family];
      else link[family] = isPort(link) ? trimAddresses(pair) : pair;
    } else if (kind === "link-mtu") {
      if (value === "") delete link.mtu;
      else link.mtu = /^\d+$/.test(value) ? Number(value) : value;
    } else if (kind === "link-impairment") {
      this.setLinkImpairment(link, index, input.dataset.end, input.dataset.key, value);
    } else if (kind === "link-mode") {
      this.linkModes[index] = value;
      link.impairments = convertImpairments(link, value);
      if (!link.impairments) delete link.impairments;
    }
    this.writeText();
    if (committed && ["link-node", "link-mode", "link-type"].includes(kind)) this.rerender();
  }

  setLinkImpairment(link, index, end, key, value) {
    const each = this.linkMode(link, index) === EACH;
    let impairments = link.impairments && typeof link.impairments === "object" ? link.impairments : {};
    let target = impairments;
    if (each) {
      const endpoint = link.endpoints?.[Number(end)] ?? "";
      target = impairments[endpoint] && typeof impairments[endpoint] === "object" ? impairments[endpoint] : {};
      impairments[endpoint] = target;
    }
    if (value === "") delete target[key];
    else target[key] = value;
    if (each) {
      for (const [endpoint, values] of Object.entries(impairments)) {
        if (values && typeof values === "object" && Object.keys(values).length === 0) delete impairments[endpoint];
      }
    }
    if (Object.keys(impairments).length) link.impairments = impairments;
    else delete link.impairments;
  }

  linkMode(link, index) {
    return this.linkModes[index] || (isPerDirection(link.impairments) ? EACH : BOTH);
  }

  keepDriverOptions(name) {
    const network = this.tree.networks[name];
    const allowed = this.driverOptions(network.driver);
    for (const key of Object.keys(network)) {
      if (key !== "driver" && !allowed.includes(key)) delete network[key];
    }
    if (allowed.includes("subnet") && !network.subnet) network.subnet = "";
  }

  setNamespace(node, name, on) {
    const spaces = (this.tree.nodes[node].namespaces ||= {});
    spaces[name] = on;
    if (NAMESPACES.every((ns) => spaces[ns] !== false)) delete this.tree.nodes[node].namespaces;
  }

  attach(node, network, on) {
    const networks = (this.tree.nodes[node].networks ||= {});
    if (on) networks[network] ||= {};
    else delete networks[network];
  }

  rename(path, name) {
    const [section, old] = path.split(".");
    const map = this.tree[section];
    if (!name || name === old || !map || name in map) {
      this.renderForm();
      return;
    }
    this.tree[section] = renameKey(map, old, name);
    if (section === "networks") {
      for (const node of Object.values(this.tree.nodes || {})) {
        if (node?.networks && old in node.networks) node.networks = renameKey(node.networks, old, name);
      }
      for (const net of Object.values(this.tree.networks)) if (net?.parent === old) net.parent = name;
    }
    if (section === "volumes") {
      for (const node of Object.values(this.tree.nodes || {})) {
        for (const mount of mountsOf(node)) if (mount?.volume === old) mount.volume = name;
      }
    }
    if (section === "nodes") {
      for (const link of this.links()) {
        const ends = linkEnds(link);
        ends.forEach((end, i) => {
          if (end.node !== old) return;
          const before = endpointOf(end);
          end.node = name;
          link.endpoints[i] = endpointOf(end);
          renameImpairmentEnd(link, before, link.endpoints[i]);
        });
      }
    }
    this.writeText();
    this.renderForm();
  }

  onClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button || !this.tree) return;
    event.preventDefault();
    const { action, name } = button.dataset;
    if (action === "add-network") {
      const n = freeName(this.tree.networks, "net");
      (this.tree.networks ||= {})[n] = { driver: "bridge", subnet: freeSubnet(this.tree) };
    } else if (action === "add-node") {
      const n = freeName(this.tree.nodes, "node");
      const first = Object.keys(this.tree.networks || {})[0];
      (this.tree.nodes ||= {})[n] = first ? { networks: { [first]: {} } } : {};
    } else if (action === "remove-network") {
      delete this.tree.networks[name];
      for (const node of Object.values(this.tree.nodes || {})) delete node?.networks?.[name];
    } else if (action === "remove-node") {
      delete this.tree.nodes[name];
      // Its links go with it, as a network's attachments go with the network.
      if (Array.isArray(this.tree.links)) {
        const kept = this.tree.links.filter((link) => !linkEnds(link).some((end) => end.node === name));
        this.linkModes = this.linkModes.filter((_, i) => kept.includes(this.tree.links[i]));
        this.tree.links = kept;
      }
    } else if (action === "add-volume") {
      this.ensureVersion2();
      (this.tree.volumes ||= {})[freeName(this.tree.volumes, "vol")] = { size: "64M" };
    } else if (action === "remove-volume") {
      delete this.tree.volumes[name];
      if (!Object.keys(this.tree.volumes).length) delete this.tree.volumes;
      // The mounts of it go with it, as a network's attachments go with the network.
      for (const node of Object.values(this.tree.nodes || {})) {
        if (!Array.isArray(node?.mounts)) continue;
        node.mounts = node.mounts.filter((m) => m?.volume !== name);
        if (!node.mounts.length) delete node.mounts;
      }
    } else if (action === "add-mount") {
      this.ensureVersion2();
      const node = this.tree.nodes[name];
      if (!Array.isArray(node.mounts)) node.mounts = [];
      const taken = new Set(node.mounts.map((m) => m?.path));
      let path = "/data";
      for (let i = 2; taken.has(path); i++) path = `/data${i}`;
      node.mounts.push({ volume: this.volumes()[0], path });
    } else if (action === "remove-mount") {
      const [node, index] = name.split(".");
      const mounts = this.tree.nodes[node].mounts;
      mounts.splice(Number(index), 1);
      if (!mounts.length) delete this.tree.nodes[node].mounts;
    } else if (action === "add-link") {
      this.ensureVersion2();
      const nodes = Object.keys(this.tree.nodes || {});
      const [a, b] = [nodes[0] || "", nodes[1] || nodes[0] || ""];
      if (!Array.isArray(this.tree.links)) this.tree.links = [];
      const endA = `${a}:${freeIfname(this.tree, a)}`;
      const endB = `${b}:${freeIfname(this.tree, b, a === b ? [endA] : [])}`;
      this.tree.links.push({ endpoints: [endA, endB] });
    } else if (action === "remove-link") {
      this.tree.links.splice(Number(name), 1);
      this.linkModes.splice(Number(name), 1);
      if (this.tree.links.length === 0) delete this.tree.links;
    }
    this.writeText();
    this.renderForm();
    this.showErrors();
  }

  // --- tree -> form -------------------------------------------------------------------

  renderForm(force = false) {
    if (!this.tree || !this.drivers) return;
    // Re-rendering under the user's cursor would lose their place: only when they are
    // not typing in the form (or chose something that changes the form's fields).
    if (!force && this.formView.contains(document.activeElement) && document.activeElement.tagName !== "BUTTON") {
      return;
    }
    const t = this.tree;
    const view = [];
    view.push(
      fieldset("Lab", "", [
        row([
          input("Name", "name", t.name),
          input("Description", "description", t.description),
        ]),
      ]),
    );
    view.push(el("h3", { class: "sub" }, "Networks"));
    for (const [name, net] of Object.entries(t.networks || {})) view.push(this.networkFields(name, net || {}));
    view.push(button("+ Add a network", { action: "add-network" }));
    view.push(el("h3", { class: "sub" }, "Volumes"));
    const volumes = this.volumes();
    if (!volumes.length) view.push(el("p", { class: "hint" }, "A volume is a tmpfs of the deployment that nodes mount under Mounts: its files outlive node restarts and redeploys and go with the lab. It needs labfile 2, which adding one sets."));
    for (const volume of volumes) view.push(this.volumeFields(volume, t.volumes[volume] || {}));
    view.push(button("+ Add a volume", { action: "add-volume" }));
    view.push(el("h3", { class: "sub" }, "Nodes"));
    for (const [name, node] of Object.entries(t.nodes || {})) view.push(this.nodeFields(name, node || {}));
    view.push(button("+ Add a node", { action: "add-node" }));
    view.push(el("h3", { class: "sub" }, "Links"));
    if (!this.links().length) view.push(el("p", { class: "hint" }, "A link joins an interface of one node straight to an interface of another (a veth pair), with its own addresses and impairments, or by its type an interface of one node alone: a dummy, a veth into the host or a VXLAN tunnel; it needs labfile 2, which adding one sets."));
    this.links().forEach((link, index) => view.push(this.linkFields(index, link)));
    view.push(button("+ Add a link", { action: "add-link" }));
    this.formView.replaceChildren(...view);
  }

  volumes() {
    return this.tree?.volumes && typeof this.tree.volumes === "object" ? Object.keys(this.tree.volumes) : [];
  }

  volumeFields(name, volume) {
    const base = `volumes.${name}`;
    const users = Object.entries(this.tree.nodes || {}).filter(([, node]) => mountsOf(node).some((m) => m?.volume === name)).map(([n]) => n);
    const fields = [
      row([
        input("Name", base, name, { rename: base, id: `${base}.name` }),
        input("Size", `${base}.size`, volume?.size, { placeholder: "64M (at most 4G)" }),
      ]),
      el("p", { class: "hint" }, users.length ? `Mounted by ${users.join(", ")}.` : "No node mounts it yet: add a mount to a node."),
    ];
    return fieldset(`Volume ${name}`, base, fields, { action: "remove-volume", name });
  }

  // A node's mounts: each a volume of the lab or (admins only) a path of the host, at a
  // path inside the node.
  mountFields(name, node) {
    const base = `nodes.${name}.mounts`;
    const volumes = this.volumes();
    const parts = [el("div", { class: "label small muted" }, "Mounts")];
    mountsOf(node).forEach((mount, index) => {
      const path = `${base}.${index}`;
      const entry = mount && typeof mount === "object" ? mount : {};
      const onHost = "host" in entry;
      const source = onHost ? HOST_SOURCE : entry.volume || "";
      const choices = [...volumes.map((v) => [v, `volume ${v}`]), [HOST_SOURCE, "a path of the host (admins only)"]];
      if (!onHost && source && !volumes.includes(source)) choices.unshift([source, `volume ${source}`]);
      if (!source) choices.unshift(["", "—"]);
      const fields = [select(`Source of mount ${index + 1}`, onHost ? path : `${path}.volume`, source, choices, "mount-source", { node: name, mount: index })];
      if (onHost) fields.push(input(`Host path of mount ${index + 1}`, `${path}.host`, entry.host, { placeholder: "e.g. /srv/course" }));
      fields.push(input(`Path in ${name} of mount ${index + 1}`, `${path}.path`, entry.path, { placeholder: "e.g. /data" }));
      parts.push(el("div", { class: "mount" },
        row(fields),
        el("div", { class: "mount-actions" },
          checkbox(`Mount ${index + 1} read-only`, `${path}.readonly`, entry.readonly === true, "bool"),
          el("button", { type: "button", class: "danger small-button", "data-action": "remove-mount", "data-name": `${name}.${index}`, "aria-label": `Remove mount ${index + 1} of ${name}` }, "Remove"))));
    });
    if (volumes.length) parts.push(button(`+ Add a mount to ${name}`, { action: "add-mount", name }));
    else parts.push(el("p", { class: "hint" }, "Add a volume of the lab (above) to mount it here."));
    return parts;
  }

  bridges() {
    return Object.entries(this.tree.networks || {}).filter(([, net]) => (net?.driver || "bridge") === "bridge").map(([name]) => name);
  }

  links() {
    return Array.isArray(this.tree?.links) ? this.tree.links.filter((l) => l && typeof l === "object") : [];
  }

  linkFields(index, link) {
    const base = `links.${index}`;
    const ends = linkEnds(link);
    const nodes = Object.keys(this.tree.nodes || {});
    const endRow = (end, letter) => {
      const path = `${base}.endpoints.${end}`;
      const node = ends[end].node;
      const choices = ["", ...nodes, ...(node && !nodes.includes(node) ? [node] : [])];
      const data = { link: index, end };
      return [
        select(`Node ${letter}`.trim(), path, node, choices, "link-node", data),
        input(`Interface ${letter}`.trim(), `${path}.ifname`, ends[end].ifname, { kind: "link-ifname", placeholder: "e.g. eth1", data }),
      ];
    };
    const address = (family, end, letter, hint) => input(`${family === "ipv4" ? "IPv4" : "IPv6"} ${letter}`.trim(), `${base}.${family}.${end}`, link[family]?.[end], { kind: "link-address", placeholder: hint, data: { link: index, end, family } });
    const type = select("Type", `${base}.type`, link.type || "veth", LINK_TYPES, "link-type", { link: index });
    const remove = { action: "remove-link", name: String(index), label: `Remove link ${index + 1}` };
    if (isPort(link)) {
      // A link of one endpoint: the node's interface, and what its far side is.
      const fields = [row([type, ...endRow(0, "")])];
      const addresses = [address("ipv4", 0, "", "optional"), address("ipv6", 0, "", "optional")];
      if (link.type === "host") addresses.push(address("ipv4", 1, "on the host", "optional"), address("ipv6", 1, "on the host", "optional"));
      addresses.push(input("MTU", `${base}.mtu`, link.mtu, { kind: "link-mtu", placeholder: "1500", data: { link: index } }));
      fields.push(row(addresses));
      const keys = (TYPE_KEYS[link.type] || []).map(([key, label, hint, kind]) =>
        kind === "bridge"
          ? select(label, `${base}.${key}`, link[key] || "", ["", ...this.bridges(), ...(link[key] && !this.bridges().includes(link[key]) ? [link[key]] : [])])
          : input(label, `${base}.${key}`, link[key], { kind, placeholder: hint }));
      if (keys.length) fields.push(row(keys));
      return fieldset(`Link ${index + 1}: ${endpointOf(ends[0])} - ${farSide(link)}`, base, fields, remove);
    }
    const mode = this.linkMode(link, index);
    const fields = [
      row([type]),
      row([...endRow(0, "A"), ...endRow(1, "B")]),
      row([
        address("ipv4", 0, "A", "e.g. 10.0.12.1/30"),
        address("ipv4", 1, "B", "e.g. 10.0.12.2/30"),
        address("ipv6", 0, "A", "optional"),
        address("ipv6", 1, "B", "optional"),
        input("MTU", `${base}.mtu`, link.mtu, { kind: "link-mtu", placeholder: "1500", data: { link: index } }),
      ]),
      select("Impairments", `${base}.impairments`, mode, [[BOTH, "the same both ways"], [EACH, "each direction its own"]], "link-mode", { link: index }),
    ];
    const impairments = link.impairments && typeof link.impairments === "object" ? link.impairments : {};
    if (mode === BOTH) {
      fields.push(impairmentRow(`${base}.impairments`, impairments, "", { kind: "link-impairment", data: { link: index, end: "" } }));
    } else {
      ends.forEach((end, i) => {
        const endpoint = endpointOf(end);
        const letter = i === 0 ? "A" : "B";
        fields.push(el("div", { class: "label small muted" }, `What ${letter} (${endpoint}) sends`));
        fields.push(impairmentRow(`${base}.impairments.${endpoint}`, impairments[endpoint] || {}, ` from ${letter}`, { kind: "link-impairment", data: { link: index, end: i } }));
      });
    }
    const name = `Link ${index + 1}: ${ends.map(endpointOf).join(" - ")}`;
    return fieldset(name, base, fields, remove);
  }

  driverOptions(driver) {
    return this.drivers[driver || "bridge"]?.options || [];
  }

  networkFields(name, net) {
    const base = `networks.${name}`;
    const driver = net.driver || "bridge";
    const options = this.driverOptions(driver);
    const fields = [
      row([
        input("Name", base, name, { rename: base, id: `${base}.name` }),
        select("Driver", `${base}.driver`, driver, Object.keys(this.drivers), "driver"),
      ]),
    ];
    const opts = [];
    if (options.includes("subnet")) opts.push(input("Subnet", `${base}.subnet`, net.subnet, { placeholder: "10.10.0.0/24" }));
    if (options.includes("subnet6")) opts.push(input("IPv6 subnet", `${base}.subnet6`, net.subnet6, { placeholder: "optional, e.g. fd00:10::/64" }));
    if (options.includes("id")) opts.push(input("VLAN id", `${base}.id`, net.id, { kind: "number", placeholder: "1–4094" }));
    if (options.includes("gateway")) opts.push(input("Gateway", `${base}.gateway`, net.gateway, { placeholder: "first address, or none" }));
    if (options.includes("gateway6")) opts.push(input("IPv6 gateway", `${base}.gateway6`, net.gateway6, { placeholder: "none, or e.g. fd00:10::1" }));
    if (options.includes("parent")) {
      const parents = Object.entries(this.tree.networks || {}).filter(([n, v]) => n !== name && v?.driver === "bridge").map(([n]) => n);
      opts.push(select("Parent", `${base}.parent`, net.parent || "", ["", ...parents, ...(net.parent && !parents.includes(net.parent) ? [net.parent] : [])]));
    }
    if (options.includes("mode")) opts.push(select("Mode", `${base}.mode`, net.mode || "", ["", ...this.drivers[driver].modes]));
    if (options.includes("vni")) opts.push(input("VNI", `${base}.vni`, net.vni, { kind: "number", placeholder: "allocated" }));
    if (options.includes("mtu")) opts.push(input("MTU", `${base}.mtu`, net.mtu, { kind: "number", placeholder: "1500" }));
    if (opts.length) fields.push(row(opts));
    if (options.includes("internal")) fields.push(checkbox("Internal: no way out of the lab", `${base}.internal`, net.internal === true, "bool"));
    if (options.includes("vlan_filtering")) fields.push(checkbox("VLAN filtering: 802.1Q-aware ports, each in its attachment's VLANs (labfile 2)", `${base}.vlan_filtering`, net.vlan_filtering === true, "bool"));
    if (options.includes("shaping")) {
      // Labfile 2 calls it impairments; a labfile 1 file keeps its own word.
      const key = "impairments" in net || (!("shaping" in net) && Number(this.tree.labfile) >= 2) ? "impairments" : "shaping";
      fields.push(el("div", { class: "label small muted" }, "Impairments (what every attachment sends; duplicate, corrupt and reorder need labfile 2, which they set)"));
      fields.push(impairmentRow(`${base}.${key}`, net[key] || {}, ""));
    }
    if (!options.length) fields.push(el("p", { class: "hint" }, driver === "host" ? "Nodes share the host's network namespace; this driver takes no options." : "Nodes get only loopback; this driver takes no options."));
    return fieldset(`Network ${name}`, base, fields, { action: "remove-network", name });
  }

  nodeFields(name, node) {
    const base = `nodes.${name}`;
    const limits = node.limits || {};
    const spaces = node.namespaces || {};
    const fields = [
      row([
        input("Name", base, name, { rename: base, id: `${base}.name` }),
        input("Host", `${base}.host`, node.host, { placeholder: "chosen" }),
        input("Root filesystem", `${base}.rootfs`, node.rootfs, { placeholder: "host" }),
      ]),
      input("Command", `${base}.command`, Array.isArray(node.command) ? node.command.join(" ") : node.command, { kind: "argv", placeholder: "default: the node's init, idle" }),
      el("div", { class: "label small muted" }, "Limits"),
      row(LIMITS.map(([key, label, hint]) => input(label, `${base}.limits.${key}`, limits[key], { placeholder: hint, kind: key === "memory" || key === "memory_swap" ? "text" : "number" }))),
      el("div", { class: "label small muted" }, "Namespaces (turning one off needs a privileged node)"),
      el("div", { class: "checks", "data-path": `${base}.namespaces` },
        ...NAMESPACES.map((ns) => checkbox(ns, `${base}.namespaces.${ns}`, spaces[ns] !== false, "namespace"))),
      checkbox("Privileged (admins only)", `${base}.privileged`, node.privileged === true, "bool"),
    ];
    fields.push(...this.mountFields(name, node));
    // A node may join another node's network namespace (labfile 2), as a pod's containers do.
    const others = Object.keys(this.tree.nodes || {}).filter((n) => n !== name);
    const mode = typeof node.network_mode === "string" ? node.network_mode : "";
    const modes = [["", "its own"], ...others.map((n) => [`container:${n}`, `${n}'s`])];
    if (mode && !modes.some(([value]) => value === mode)) modes.push([mode, mode]);
    fields.push(row([select("Network namespace", `${base}.network_mode`, mode, modes)]));
    if (mode) {
      const owner = mode.replace(/^container:/, "");
      fields.push(el("p", { class: "hint" }, `${name} has ${owner}'s interfaces, addresses and routes: it has no networks, routes or links of its own.`));
      // The file may still give it some (typed in the YAML): shown, for their errors.
      if (!Object.keys(node.networks || {}).length) return fieldset(`Node ${name}`, base, fields, { action: "remove-node", name });
    }
    fields.push(el("div", { class: "label small muted" }, "Networks"));
    const attached = node.networks || {};
    const attachments = [];
    for (const network of Object.keys(this.tree.networks || {})) {
      const on = network in attached;
      const parts = [checkbox(network, `${base}.networks.${network}`, on, "attach", { network })];
      let own = null;
      const path = `${base}.networks.${network}`;
      const takes = on ? this.attachmentTakes(this.tree.networks[network]) : [];
      const values = attached[network] && typeof attached[network] === "object" ? attached[network] : {};
      // A VLAN field shows on a vlan_filtering bridge, or where the file already has it
      // (so its error has a field to stand by).
      const vlanAware = this.tree.networks[network]?.vlan_filtering === true;
      if (takes.includes("ipv4")) parts.push(input(`Address on ${network}`, `${path}.ipv4`, values.ipv4, { placeholder: "automatic", small: true }));
      if (takes.includes("ipv6")) parts.push(input(`IPv6 on ${network}`, `${path}.ipv6`, values.ipv6, { placeholder: this.tree.networks[network]?.subnet6 ? "automatic" : "needs an IPv6 subnet", small: true }));
      if (takes.includes("vlan") && (vlanAware || "vlan" in values)) parts.push(input(`Access VLAN on ${network}`, `${path}.vlan`, values.vlan, { kind: "number", placeholder: "1 (untagged)", small: true }));
      if (takes.includes("vlans") && (vlanAware || "vlans" in values)) parts.push(input(`Trunk VLANs on ${network}`, `${path}.vlans`, Array.isArray(values.vlans) ? values.vlans.join(", ") : values.vlans, { kind: "vlan-list", placeholder: "tagged, e.g. 10, 20", small: true }));
      if (on && this.addressed(this.tree.networks[network])) {
        const values = attached[network]?.impairments || {};
        own = el("details", { class: "impairments", open: Object.keys(values).length > 0 },
          el("summary", { class: "small" }, `Impairments of what ${name} sends on ${network} (instead of the network's; labfile 2)`),
          impairmentRow(`${base}.networks.${network}.impairments`, values, ` on ${network}`));
      }
      attachments.push(el("div", { class: "attachment" }, ...parts));
      if (own) attachments.push(own);
    }
    fields.push(el("div", { class: "attachments", "data-path": `${base}.networks` }, ...attachments));
    return fieldset(`Node ${name}`, base, fields, { action: "remove-node", name });
  }

  // What an attachment to the network takes, as labplan's option table says for its
  // driver (a driver the form does not know is left to the validator: all of them).
  attachmentTakes(network) {
    const driver = network?.driver || "bridge";
    return this.attachmentOptions[driver] || (driver in this.drivers ? [] : ["ipv4", "ipv6", "vlan", "vlans"]);
  }

  // A node on it gets an address: its driver takes a subnet (a driver the form does not
  // know is left to the validator).
  addressed(network) {
    if (!network) return false;
    const driver = network.driver || "bridge";
    return !(driver in this.drivers) || this.driverOptions(driver).includes("subnet");
  }
}

// --- helpers ------------------------------------------------------------------------

// Chromium may scroll a page scrolled to its end when the sticky YAML card changes (its
// badge, its text): a click on Save that committed a field would then land beside the
// button. The page stays where the user left it.
function keepingScroll(change) {
  const [x, y] = [window.scrollX, window.scrollY];
  change();
  if (window.scrollX !== x || window.scrollY !== y) window.scrollTo(x, y);
}

// Each driver of the schema's enum, in its order, with the network options it takes (its
// rule refuses the others with `false`) and its modes (its rule's enum of `mode`).
function driverForms(schema) {
  const network = schema.properties.networks.additionalProperties;
  const options = Object.keys(network.properties).filter((key) => key !== "driver");
  const rules = new Map((network.allOf || []).map((rule) => [rule.if.properties.driver.const, rule.then]));
  const forms = {};
  for (const driver of network.properties.driver.enum) {
    const refused = rules.get(driver)?.properties || {};
    forms[driver] = {
      options: options.filter((key) => refused[key] !== false),
      modes: refused.mode?.enum || [],
    };
  }
  return forms;
}

function fieldValue(text, kind) {
  const value = text.trim();
  if (value === "") return undefined;
  if (kind === "number" && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (kind === "argv") return value.split(/\s+/);
  // A trunk's VLANs typed "10, 20"; what is not a number is kept for the validator to name.
  if (kind === "vlan-list") return value.split(/[\s,]+/).filter(Boolean).map((v) => (/^\d+$/.test(v) ? Number(v) : v));
  return value; // left as typed: the validator says what is wrong with it
}

function getPath(tree, keys) {
  return keys.reduce((node, key) => (node && typeof node === "object" ? node[key] : undefined), tree);
}

function setPath(tree, keys, value) {
  let node = tree;
  for (const key of keys.slice(0, -1)) {
    if (!node[key] || typeof node[key] !== "object") node[key] = {};
    node = node[key];
  }
  const last = keys[keys.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
  pruneEmpty(tree, keys.slice(0, -1));
}

// Drop mappings a cleared field left empty (an empty `limits: {}` says nothing), but
// never an attachment: `lan: {}` attaches the node with every default.
function pruneEmpty(tree, keys) {
  for (let depth = keys.length; depth > 2; depth--) {
    if (depth === 4 && keys[0] === "nodes" && keys[2] === "networks") return;
    const parent = keys.slice(0, depth - 1).reduce((n, k) => n?.[k], tree);
    const key = keys[depth - 1];
    const value = parent?.[key];
    if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0) {
      delete parent[key];
    } else return;
  }
}

// A link's two ends as {node, ifname}, whatever the tree holds (the validator names what
// is wrong with it).
function linkEnds(link) {
  const endpoints = Array.isArray(link?.endpoints) ? link.endpoints : [];
  return [0, 1].map((i) => {
    const text = typeof endpoints[i] === "string" ? endpoints[i] : "";
    const at = text.indexOf(":");
    return at < 0 ? { node: text, ifname: "" } : { node: text.slice(0, at), ifname: text.slice(at + 1) };
  });
}

function endpointOf(end) {
  return `${end.node}:${end.ifname}`;
}

function isPerDirection(impairments) {
  return !!impairments && typeof impairments === "object" && Object.keys(impairments).some((k) => k.includes(":"));
}

function renameImpairmentEnd(link, old, endpoint) {
  if (old === endpoint || !isPerDirection(link.impairments) || !(old in link.impairments)) return;
  link.impairments = renameKey(link.impairments, old, endpoint);
}

// The link's impairments in the other form: one set for both ways from A's (or B's)
// when going to BOTH, that set for each end when going to EACH.
function convertImpairments(link, mode) {
  const current = link.impairments && typeof link.impairments === "object" ? link.impairments : {};
  const endpoints = linkEnds(link).map(endpointOf);
  if (mode === EACH) {
    if (isPerDirection(current) || Object.keys(current).length === 0) return link.impairments;
    return Object.fromEntries(endpoints.map((e) => [e, { ...current }]));
  }
  if (!isPerDirection(current)) return link.impairments;
  const first = endpoints.map((e) => current[e]).find((v) => v && Object.keys(v).length);
  return first ? { ...first } : undefined;
}

// An interface name the node does not use yet: eth1, eth2, ... (eth0 is usually its
// first network's).
function freeIfname(tree, node, taken = []) {
  const used = new Set(taken);
  for (const attachment of Object.values(tree.nodes?.[node]?.networks || {})) if (attachment?.ifname) used.add(`${node}:${attachment.ifname}`);
  for (const link of Array.isArray(tree.links) ? tree.links : []) for (const e of link?.endpoints || []) used.add(e);
  const attached = Object.keys(tree.nodes?.[node]?.networks || {}).length;
  for (let i = Math.max(attached, 1); ; i++) if (!used.has(`${node}:eth${i}`)) return `eth${i}`;
}

function impairmentRow(path, values, suffix, { kind = "impairment", data } = {}) {
  return row(IMPAIRMENTS.map(([key, label, hint]) => input(`${label}${suffix}`, `${path}.${key}`, values?.[key], { placeholder: hint, kind, data: data ? { ...data, key } : undefined })));
}

function renameKey(map, old, name) {
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [k === old ? name : k, v]));
}

function mountsOf(node) {
  return Array.isArray(node?.mounts) ? node.mounts : [];
}

function freeName(map, stem) {
  for (let i = 1; ; i++) if (!(map && `${stem}${i}` in map)) return `${stem}${i}`;
}

function freeSubnet(tree) {
  const used = new Set(Object.values(tree.networks || {}).map((n) => n?.subnet));
  for (let i = 10; i < 250; i++) if (!used.has(`10.${i}.0.0/24`)) return `10.${i}.0.0/24`;
  return "";
}

let uid = 0;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function dataAttributes(data) {
  return Object.fromEntries(Object.entries(data || {}).map(([k, v]) => [`data-${k}`, String(v)]));
}

function input(label, path, value, { kind = "text", rename, placeholder, id, data } = {}) {
  const inputId = `f-${++uid}`;
  const box = el("input", {
    ...dataAttributes(data),
    type: "text",
    id: inputId,
    value: value === undefined || value === null ? "" : String(value),
    placeholder,
    "data-path": rename === undefined ? path : (id || path),
    "data-kind": kind,
    "data-rename": rename,
    inputmode: kind === "number" ? "decimal" : undefined,
    spellcheck: "false",
    autocomplete: "off",
  });
  return el("div", { class: "field" }, el("label", { for: inputId }, label), box);
}

// `choices`: values, or [value, label] pairs.
function select(label, path, value, choices, kind = "text", data = undefined) {
  const selectId = `f-${++uid}`;
  const box = el("select", { ...dataAttributes(data), id: selectId, "data-path": path, "data-kind": kind });
  for (const choice of choices) {
    const [val, text] = Array.isArray(choice) ? choice : [choice, choice];
    box.append(el("option", { value: val, selected: val === value }, text || "—"));
  }
  return el("div", { class: "field" }, el("label", { for: selectId }, label), box);
}

function checkbox(label, path, checked, kind, extra = {}) {
  const boxId = `f-${++uid}`;
  const box = el("input", { type: "checkbox", id: boxId, checked, "data-path": path, "data-kind": kind, "data-network": extra.network });
  return el("label", { for: boxId, class: "check" }, box, " ", label);
}

function row(children) {
  return el("div", { class: "row" }, ...children);
}

function button(text, data) {
  return el("button", { type: "button", class: "add", "data-action": data.action, "data-name": data.name }, text);
}

function fieldset(legend, path, fields, remove) {
  const head = el("div", { class: "item-head" }, el("legend", {}, legend));
  if (remove) {
    head.append(el("button", { type: "button", class: "danger small-button", "data-action": remove.action, "data-name": remove.name, "aria-label": remove.label || `Remove ${legend}` }, "Remove"));
  }
  return el("fieldset", { "data-path": path || undefined }, head, el("div", { class: "fields" }, ...fields));
}
