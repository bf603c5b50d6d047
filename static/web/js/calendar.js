// The calendar's helpers: dragging over the week (or clicking an hour) fills the booking
// form, a booking of mine in the week leads to its actions, cancelling asks first, and
// countdowns (the dashboard's reservations) tick every second. The page works without
// them: the forms post and the week is drawn by the server.
//
// Times: the server draws the page in the zone named by the `tz` cookie (UTC until the
// browser has told it); `syncZone` keeps that cookie on the browser's zone and redraws a
// page drawn in another zone once.

import { keepFocusInside } from "labmgr/dialog.js";

const MINUTE_MS = 60 * 1000;
const SLOT_MS = 30 * MINUTE_MS; // what a drag snaps to
const HOUR_MS = 60 * MINUTE_MS;
const UTC_NAMES = new Set(["UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu",
  "GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "GMT0", "GMT+0", "GMT-0"]);

export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function sameZone(a, b) {
  return a === b || (UTC_NAMES.has(a) && UTC_NAMES.has(b));
}

// Tell the server the browser's zone; redraw once when this page was drawn in another.
export function syncZone(pageZone, { redraw = true } = {}) {
  const zone = browserZone();
  if (!/^[A-Za-z0-9_+\-/]{1,64}$/.test(zone)) return; // IANA names need no cookie escaping
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("tz="))?.slice(3);
  if (cookie !== zone) document.cookie = `tz=${zone}; path=/; max-age=31536000; samesite=lax`;
  // Once per page and session: a browser refusing cookies is not reloaded again and again.
  const redrawn = `labmgr-tz-redrawn:${location.pathname}`;
  if (redraw && pageZone && !sameZone(pageZone, zone) && !sessionStorage.getItem(redrawn)) {
    sessionStorage.setItem(redrawn, zone);
    location.reload();
  }
}

// "YYYY-MM-DDTHH:MM" of a moment in `zone`: what a datetime-local field of the page holds.
export function formTime(ms, zone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

// The moment at height `y` of a day's column, snapped down to a slot.
function momentAt(body, y) {
  const start = Date.parse(body.dataset.start);
  const end = Date.parse(body.dataset.end);
  const rect = body.getBoundingClientRect();
  const share = Math.min(Math.max((y - rect.top) / rect.height, 0), 0.9999);
  return start + Math.floor((share * (end - start)) / SLOT_MS) * SLOT_MS;
}

function bodyAt(x, y) {
  return document.elementFromPoint(x, y)?.closest(".day .day-body") ?? null;
}

function drawSelection(week, from, to) {
  for (const old of week.querySelectorAll(".selection")) old.remove();
  if (from === null) return;
  for (const body of week.querySelectorAll(".day .day-body")) {
    const start = Date.parse(body.dataset.start);
    const end = Date.parse(body.dataset.end);
    const a = Math.max(from, start);
    const b = Math.min(to, end);
    if (a >= b) continue;
    const piece = document.createElement("div");
    piece.className = "selection";
    piece.setAttribute("aria-hidden", "true");
    piece.style.top = `${((a - start) / (end - start)) * 100}%`;
    piece.style.height = `${((b - a) / (end - start)) * 100}%`;
    body.append(piece);
  }
}

export function startCalendar(week, form) {
  if (!week || !form) return;
  const zone = week.dataset.zone || "UTC";
  syncZone(zone, { redraw: week.dataset.redraw === "yes" });
  const start = form.querySelector("[name=start]");
  const end = form.querySelector("[name=end]");
  const book = form.querySelector("button[type=submit]");
  let anchor = null; // the slot the drag began on
  let moved = false;

  const span = (body, y) => {
    const here = momentAt(body, y);
    return [Math.min(anchor, here), Math.max(anchor, here) + SLOT_MS];
  };
  const fill = (from, to) => {
    start.value = formTime(from, zone);
    end.value = formTime(to, zone);
  };

  week.addEventListener("pointerdown", (event) => {
    const body = event.target.closest(".day .day-body");
    if (!body || event.target.closest(".block") || event.button !== 0) return;
    // A finger scrolls the page (a swipe cancels the pointer) and a tap picks an hour;
    // a mouse or a pen drags.
    if (event.pointerType !== "touch") event.preventDefault();
    anchor = momentAt(body, event.clientY);
    moved = false;
    drawSelection(week, anchor, anchor + SLOT_MS);
  });
  week.addEventListener("pointermove", (event) => {
    if (anchor === null || event.pointerType === "touch") return;
    const body = bodyAt(event.clientX, event.clientY);
    if (!body) return;
    const [from, to] = span(body, event.clientY);
    moved = moved || to - from > SLOT_MS;
    drawSelection(week, from, to);
  });
  week.addEventListener("pointercancel", () => {
    anchor = null;
    drawSelection(week, null, null);
  });
  document.addEventListener("pointerup", (event) => {
    if (anchor === null) return;
    const body = bodyAt(event.clientX, event.clientY);
    let [from, to] = body ? span(body, event.clientY) : [anchor, anchor + SLOT_MS];
    if (!moved && to - from <= SLOT_MS) {
      // A click: an hour from the hour picked, as before dragging existed.
      from = anchor - (anchor % HOUR_MS);
      to = from + HOUR_MS;
    }
    anchor = null;
    drawSelection(week, from, to);
    fill(from, to);
    (moved ? book : start).focus();
  });

  week.addEventListener("click", (event) => {
    // A booking of mine leads to its actions beside the week.
    const block = event.target.closest(".block[data-reservation]");
    const item = block && document.getElementById(`booking-${block.dataset.reservation}`);
    if (!item) return;
    item.scrollIntoView({ block: "nearest" });
    item.focus();
  });

  const whole = form.querySelector("[name=whole_host]");
  const share = form.querySelector(".share-fields");
  const sync = () => {
    // A whole-host booking takes no share: its fields are not sent.
    share.setAttribute("aria-disabled", String(whole.checked));
    for (const input of share.querySelectorAll("input")) input.disabled = whole.checked;
  };
  whole.addEventListener("change", sync);
  sync();
  confirmCancels();
}

// Forms with data-confirm (cancelling a booking) ask in a dialog before they post.
export function confirmCancels(root = document) {
  for (const form of root.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", async (event) => {
      if (form.elements.confirmed.value) return;
      event.preventDefault();
      if (await confirmDialog(form.dataset.confirm)) {
        form.elements.confirmed.value = "on";
        form.submit();
      }
    });
  }
}

function confirmDialog(text) {
  const dialog = document.getElementById("confirm");
  if (!dialog?.showModal) return Promise.resolve(window.confirm(text));
  document.getElementById("confirm-text").textContent = text;
  dialog.returnValue = "";
  keepFocusInside(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

export function countdownText(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  const clock = `${h} h ${pad(m)} min ${pad(s)} s`;
  return d > 0 ? `${d} d ${clock}` : clock;
}

// Elements with data-countdown="<ISO end>" and data-verb ("ends", "starts") say how
// long is left, and data-done once it has passed.
export function startCountdowns(root = document) {
  const items = [...root.querySelectorAll("[data-countdown]")];
  if (!items.length) return;
  const tick = () => {
    const now = Date.now();
    for (const item of items) {
      const left = Date.parse(item.dataset.countdown) - now;
      item.textContent = left > 0 ? `${item.dataset.verb} in ${countdownText(left)}` : item.dataset.done;
    }
  };
  tick();
  setInterval(tick, 1000);
}
