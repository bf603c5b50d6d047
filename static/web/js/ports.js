// Links of one endpoint (labfile 2 `links.N.type`): what each type takes beyond its
// node's interface, and how a link turns into another type keeping what both have.

export const LINK_TYPES = [
  ["veth", "to another node (veth)"],
  ["dummy", "a dummy interface"],
  ["host", "to the host (admins)"],
  ["vxlan", "a VXLAN tunnel (admins)"],
  ["network", "one more port on a bridge"],
];

// Per type: [key, label, placeholder, field kind] of the keys only that type has; a
// "bridge" field picks one of the lab's bridge networks.
export const TYPE_KEYS = {
  dummy: [],
  host: [["host_ifname", "Name on the host", "optional, e.g. r1-eth1", "text"]],
  vxlan: [
    ["remote", "Remote", "e.g. 192.0.2.7", "text"],
    ["vni", "VNI", "1–16777215", "number"],
    ["port", "UDP port", "4789", "number"],
    ["parent", "Underlay", "optional, a host interface", "text"],
  ],
  network: [
    ["network", "Network", "", "bridge"],
    ["host_ifname", "Name on the host (admins)", "optional", "text"],
  ],
};
const ALL_KEYS = Object.values(TYPE_KEYS).flat().map(([key]) => key);

export function isPort(link) {
  return typeof link?.type === "string" && link.type !== "veth";
}

// How many addresses of a family the type takes: the node's, and a host link's host side.
export function addressCount(type) {
  return ["dummy", "vxlan", "network"].includes(type) ? 1 : 2;
}

// The link as `type`: the node's end and addresses stay; impairments and the keys the
// new type has not go. A veth gets its second endpoint from `secondEnd`.
export function retype(link, type, secondEnd) {
  for (const key of ALL_KEYS) {
    if (!(TYPE_KEYS[type] || []).some(([k]) => k === key)) delete link[key];
  }
  const first = Array.isArray(link.endpoints) && link.endpoints.length ? link.endpoints[0] : ":";
  for (const family of ["ipv4", "ipv6"]) {
    if (!Array.isArray(link[family])) continue;
    link[family] = link[family].slice(0, addressCount(type));
    if (!link[family].some(Boolean)) delete link[family];
  }
  if (type === "veth") {
    delete link.type;
    link.endpoints = [first, secondEnd];
  } else {
    // The type first, as a labfile reads: "- type: dummy".
    const rest = { ...link, endpoints: [first] };
    delete rest.impairments;
    delete rest.type;
    for (const key of Object.keys(link)) delete link[key];
    Object.assign(link, { type }, rest);
  }
}

// The addresses of a port as the labfile writes them: no empty ones at the end.
export function trimAddresses(addresses) {
  const kept = [...addresses];
  while (kept.length && !kept[kept.length - 1]) kept.pop();
  return kept;
}

// What the far side of a port is, as its legend says it.
export function farSide(link) {
  if (link.type === "host") return link.host_ifname ? `the host (${link.host_ifname})` : "the host";
  if (link.type === "vxlan") return `VXLAN ${link.vni ?? "?"} to ${link.remote || "?"}`;
  if (link.type === "network") return `network ${link.network || "?"}`;
  return link.type;
}
