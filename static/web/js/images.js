// The Images page: each host's store as its agent last reported it, drawn from the page's
// data and drawn again from `GET /api/hosts/{id}/images` whenever the user's stream
// (`ws/me/`) says a host's images or its last action changed. Admins pull, remove, prune
// and upload archives through the API; the host's agent answers later, and its report
// redraws the list.

import { openStream } from "labmgr/live.js";
import { get, post, ApiError } from "labmgr/api.js";

const CHUNK = 1024 * 1024; // bytes per uploaded chunk: the server's body limit

export function startImages({ isAdmin = false, streamPath = "/ws/me/" } = {}) {
  const data = JSON.parse(document.getElementById("images-data").textContent);
  for (const host of data) draw(host, isAdmin);
  if (isAdmin) for (const section of sections()) bindActions(section);
  const state = document.getElementById("images-live");
  return openStream(streamPath, {
    handlers: {
      "host.images": (event) => refresh(event.host, isAdmin),
      "host.status": (event) => setHostStatus(event.host, event.status),
    },
    onState: (s) => {
      state.dataset.state = s;
      state.textContent = { live: "live", reconnecting: "reconnecting…", refused: "not live: log in again" }[s] || s;
      state.className = "live-state " + (s === "live" ? "ok" : "down");
    },
    onReconnect: () => { for (const section of sections()) refresh(section.dataset.slug, isAdmin); },
  });
}

const sections = () => [...document.querySelectorAll("section.host-images")];
const sectionOf = (slug) => document.querySelector(`section.host-images[data-slug="${CSS.escape(slug)}"]`);
const imagesUrl = (section, tail = "") => `/api/hosts/${section.dataset.host}/images${tail}`;

async function refresh(slug, isAdmin) {
  const section = sectionOf(slug);
  if (!section) return;
  try {
    draw(await get(imagesUrl(section)), isAdmin);
  } catch {
    // the next event, or the next reconnect, tries again
  }
}

function setHostStatus(slug, status) {
  const badge = sectionOf(slug)?.querySelector(".item-head .status");
  if (!badge) return;
  badge.className = `status status-${status}`;
  badge.dataset.status = status;
  badge.textContent = status.charAt(0).toUpperCase() + status.slice(1);
}

function draw(host, isAdmin) {
  const section = sectionOf(host.slug);
  if (!section) return;
  setHostStatus(host.slug, host.status);
  const last = section.querySelector(".last-action");
  last.hidden = !host.last_action;
  const failed = host.last_action_ok === false;
  last.textContent = host.last_action ? `Last action${failed ? " failed" : ""}: ${host.last_action}` : "";
  last.dataset.ok = host.last_action_ok === null ? "pending" : String(host.last_action_ok);
  const body = section.querySelector("tbody");
  body.replaceChildren(...host.images.map((image) => row(image, isAdmin, section)));
  if (!host.images.length) {
    const empty = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = isAdmin ? 6 : 5;
    cell.className = "muted no-images";
    cell.textContent = "No images on this host.";
    empty.append(cell);
    body.append(empty);
  }
}

function row(image, isAdmin, section) {
  const tr = document.createElement("tr");
  tr.dataset.digest = image.digest;
  const name = document.createElement("th");
  name.scope = "row";
  if (image.refs.length) {
    image.refs.forEach((ref, i) => {
      if (i) name.append(document.createElement("br"));
      name.append(text("code", ref));
    });
  } else {
    name.append(text("span", "untagged", "muted"));
  }
  const digest = text("td", image.digest.slice(0, 19) + "…", "small");
  digest.title = image.digest;
  const used = document.createElement("td");
  for (const d of image.deployments) {
    const link = document.createElement("a");
    link.href = `/labs/${d.lab}/`;
    link.textContent = d.lab_name;
    used.append(link, text("span", ` #${d.id} ${d.status}`, "small muted"), document.createElement("br"));
  }
  if (image.other_deployments) {
    used.append(text("span", `${image.other_deployments} other deployment${image.other_deployments === 1 ? "" : "s"}`, "small muted"));
  }
  if (!image.deployments.length && !image.other_deployments) used.append(text("span", "unused", "muted"));
  tr.append(name, digest, text("td", size(image.size)), text("td", when(image.last_used)), used);
  if (isAdmin) {
    const actions = document.createElement("td");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link-like";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${image.refs[0] || image.digest} from this host`);
    remove.addEventListener("click", () => act(section, "/remove", { refs: [image.digest] }));
    actions.append(remove);
    tr.append(actions);
  }
  return tr;
}

function bindActions(section) {
  const pull = section.querySelector("form.image-pull");
  pull.addEventListener("submit", (event) => {
    event.preventDefault();
    act(section, "/pull", { ref: pull.elements.ref.value.trim() }).then((ok) => { if (ok) pull.reset(); });
  });
  section.querySelector(".prune-now").addEventListener("click", () => {
    act(section, "/prune", { all: true }).then(() => { section.querySelector("details.image-prune").open = false; });
  });
  const upload = section.querySelector("details.image-upload form");
  upload.addEventListener("submit", (event) => {
    event.preventDefault();
    uploadArchive(section, upload);
  });
}

function showError(section, sentence) {
  const box = section.querySelector(".image-error");
  box.hidden = !sentence;
  box.textContent = sentence || "";
}

function explain(error) {
  if (!(error instanceof ApiError)) return String(error);
  const fields = Object.entries(error.errors || {}).map(([field, words]) => `${field}: ${words.join(" ")}`);
  return fields.length ? fields.join("; ") : error.message;
}

async function act(section, tail, body) {
  showError(section, "");
  try {
    const sent = await post(imagesUrl(section, tail), body);
    const last = section.querySelector(".last-action");
    last.hidden = false;
    last.textContent = `Last action: ${sent.status}`;
    last.dataset.ok = "pending";
    return true;
  } catch (error) {
    showError(section, explain(error));
    return false;
  }
}

function csrfToken(form) {
  return form.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
}

async function uploadArchive(section, form) {
  showError(section, "");
  const file = form.elements.archive.files[0];
  if (!file) return;
  const bar = form.querySelector(".upload-progress");
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  bar.hidden = false;
  bar.value = 0;
  try {
    const name = form.elements.name.value.trim();
    const started = await post(imagesUrl(section, "/uploads"), { size: file.size, ...(name ? { name } : {}) });
    const step = Math.min(started.chunk_max || CHUNK, CHUNK);
    for (let n = 0, at = 0; at < file.size; n += 1, at += step) {
      const response = await fetch(imagesUrl(section, `/uploads/${started.upload}/chunks/${n}`), {
        method: "PUT",
        credentials: "same-origin",
        headers: { "Content-Type": "application/octet-stream", Accept: "application/json", "X-CSRFToken": csrfToken(form) },
        body: file.slice(at, at + step),
      });
      const answer = await response.json().catch(() => null);
      if (!response.ok) throw new ApiError(answer?.detail || `The chunk was refused (HTTP ${response.status}).`, response.status, answer?.errors || {});
      bar.value = answer.received / file.size;
    }
    await act(section, `/uploads/${started.upload}/load`, undefined);
    form.reset();
  } catch (error) {
    showError(section, explain(error));
  } finally {
    button.disabled = false;
    bar.hidden = true;
  }
}

function text(tag, content, className = "") {
  const element = document.createElement(tag);
  element.textContent = content;
  if (className) element.className = className;
  return element;
}

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function when(seconds) {
  if (!seconds) return "never";
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
