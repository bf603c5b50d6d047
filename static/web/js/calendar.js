// The calendar's helpers: picking an hour in the week fills the booking form, and
// countdowns (the dashboard's reservations) tick every second. The page works without
// them: the form posts and the week is drawn by the server.

const HOUR_MS = 3600 * 1000;

function formTime(date) {
  // datetime-local wants "YYYY-MM-DDTHH:MM"; the calendar speaks UTC.
  return date.toISOString().slice(0, 16);
}

export function startCalendar(week, form) {
  if (!week || !form) return;
  const start = form.querySelector("[name=start]");
  const end = form.querySelector("[name=end]");
  week.addEventListener("click", (event) => {
    const body = event.target.closest(".day .day-body");
    if (!body || event.target.closest(".block")) return;
    const day = body.closest(".day").dataset.day;
    const rect = body.getBoundingClientRect();
    const hour = Math.min(23, Math.max(0, Math.floor(((event.clientY - rect.top) / rect.height) * 24)));
    const from = new Date(`${day}T00:00:00Z`).getTime() + hour * HOUR_MS;
    start.value = formTime(new Date(from));
    end.value = formTime(new Date(from + HOUR_MS));
    start.focus();
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
