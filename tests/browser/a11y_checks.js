/* The checks of tests/browser/test_accessibility.py, run in the page: what is shown,
   what a mouse can click, colours and their contrast, the page's structure. */
window.__a11y = (() => {
  const CONTROLS = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"]), [contenteditable=""], [contenteditable=true]';
  const shown = (el) => {
    if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) return false;
    const r = el.getBoundingClientRect();
    // Visually hidden on purpose (.sr-only, the skip link until focused): 1px or off-page.
    return r.width > 1 && r.height > 1 && r.right > 0 && r.bottom > -window.scrollY;
  };
  // Surfaces a mouse uses that have their keyboard way elsewhere, tested on their own:
  // the calendar's week (dragging books; the booking form is the alternative) and my
  // bookings drawn in it (each leads to the same booking in the list beside the week).
  const MOUSE_ONLY = ".week .day-body, .week .block[data-reservation]";
  // Elements that say "click me" with a hand cursor without being a control.
  const pointers = () => [...document.body.querySelectorAll("*")].filter((el) =>
    getComputedStyle(el).cursor === "pointer" && !el.closest(CONTROLS) && !el.matches(MOUSE_ONLY)
    && getComputedStyle(el.parentElement).cursor !== "pointer");
  const clickable = () => [...document.querySelectorAll(CONTROLS), ...pointers()].filter((el) =>
    shown(el) && !el.disabled && !el.closest("[inert], fieldset:disabled"));
  const describe = (el) => {
    const name = (el.getAttribute("aria-label") || el.innerText || el.value || el.name || "").trim().replace(/\s+/g, " ").slice(0, 40);
    return `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${name ? ` "${name}"` : ""}`;
  };
  const parse = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return [r, g, b, a];
  };
  const over = (top, under) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
  };
  // The colours behind an element: its own and its ancestors' backgrounds composed from
  // the first opaque one up. A gradient of opaque colours (the calendar's hatching) gives
  // each of its colours, and text must read on every one; an image, or a gradient with a
  // see-through stop, makes the background unknown (null): such text is skipped, since
  // what lies under it cannot be told from styles.
  const backgrounds = (el) => {
    const layers = [];
    let base = [[255, 255, 255, 1]];  // the canvas under everything
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      const image = style.backgroundImage;
      if (image !== "none") {
        const gradient = /^(repeating-)?linear-gradient\(/.test(image) && !image.includes("url(");
        const stops = gradient ? (image.match(/rgba?\([^)]+\)/g) || []).map(parse) : [];
        if (!stops.length || stops.some((c) => c[3] < 1)) return null;
        base = stops;
        break;
      }
      const colour = parse(style.backgroundColor);
      if (colour && colour[3] > 0) layers.push(colour);
      if (colour && colour[3] >= 1) break;
    }
    return base.map((b) => layers.reduceRight((under, layer) => over(layer, under), b));
  };
  const background = (el) => {
    const all = backgrounds(el);
    return all && all.length === 1 ? all[0] : null;
  };
  const luminance = ([r, g, b]) => {
    const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const ratio = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const opacity = (el) => {
    let o = 1;
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) o *= Number(getComputedStyle(node).opacity);
    return o;
  };
  return { shown, clickable, describe, parse, over, background, backgrounds, ratio, opacity };
})();

window.__a11y.layout = () => {
  const { clickable, describe } = window.__a11y;
  const problems = [];
  const width = window.innerWidth;
  const overflow = document.documentElement.scrollWidth - width;
  if (overflow > 0) problems.push(`the page scrolls sideways by ${overflow}px`);
  for (const el of clickable()) {
    // Inside a box that scrolls sideways on purpose (a long command, a table), a control
    // may sit outside the box's view; it is reached by scrolling that box.
    if (el.closest("pre, .scroll-x")) continue;
    el.scrollIntoView({ block: "center", inline: "nearest", behavior: "instant" });
    const r = el.getBoundingClientRect();
    if (r.left < -1 || r.right > width + 1) {
      problems.push(`${describe(el)} is cut off (${Math.round(r.left)}..${Math.round(r.right)} of ${width})`);
      continue;
    }
    const x = Math.min(Math.max(r.left + r.width / 2, 0), width - 1);
    const y = Math.min(Math.max(r.top + r.height / 2, 0), window.innerHeight - 1);
    const hit = document.elementFromPoint(x, y);
    const label = el.labels && el.labels[0];
    if (hit && !el.contains(hit) && !(label && label.contains(hit)) && !hit.contains(el)) {
      problems.push(`${describe(el)} is covered by ${describe(hit)}`);
    }
  }
  window.scrollTo(0, 0);
  return problems;
};

window.__a11y.contrast = () => {
  const { shown, describe, parse, over, background, backgrounds, ratio, opacity } = window.__a11y;
  const problems = [];
  const check = (el, colour, what) => {
    const all = backgrounds(el);
    if (!all) return;  // text over an image: unknown, skipped (see backgrounds)
    const style = getComputedStyle(el);
    const fg = parse(colour);
    fg[3] *= opacity(el);
    const size = parseFloat(style.fontSize);
    const bold = Number(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    const need = large ? 3 : 4.5;
    const [got, bg] = all.map((b) => [ratio(over(fg, b), b), b]).sort((p, q) => p[0] - q[0])[0];
    if (got < need) problems.push(`${what} of ${describe(el)}: ${got.toFixed(2)}:1 < ${need}:1 (${colour} on rgb(${bg.slice(0, 3).join(",")}))`);
  };
  for (const el of document.body.querySelectorAll("*")) {
    if (!shown(el) || el.closest("svg, canvas, [aria-hidden=true]")) continue;
    // Disabled controls are exempt from contrast (WCAG 1.4.3).
    if (el.closest(":disabled, [aria-disabled=true]")) continue;
    const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (text) check(el, getComputedStyle(el).color, "text");
    if (el.matches("input, select, textarea")) {
      if (el.value && el.type !== "checkbox" && el.type !== "radio") check(el, getComputedStyle(el).color, "value");
      if (el.placeholder && !el.value) check(el, getComputedStyle(el, "::placeholder").color, "placeholder");
      // A control's outline against what is around it (WCAG 1.4.11, 3:1).
      const style = getComputedStyle(el);
      if (parseFloat(style.borderTopWidth) > 0 && !["checkbox", "radio"].includes(el.type)) {
        const around = background(el.parentElement);
        const inside = background(el);
        const border = parse(style.borderTopColor);
        if (around && inside) {
          const edge = over(border, around);
          const got = Math.max(ratio(edge, around), ratio(edge, inside));
          if (got < 3) problems.push(`border of ${describe(el)}: ${got.toFixed(2)}:1 < 3:1 (${style.borderTopColor})`);
        }
      }
    }
  }
  return problems;
};

window.__a11y.structure = (loggedIn) => {
  const { shown, clickable, describe } = window.__a11y;
  const problems = [];
  const h1 = document.querySelectorAll("h1");
  if (h1.length !== 1) problems.push(`${h1.length} h1 headings (one wanted)`);
  if (!document.title.trim()) problems.push("no <title>");
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  const landmarks = loggedIn ? ["header", "nav", "main"] : ["header", "main"];
  for (const tag of landmarks) {
    if (document.querySelectorAll(tag).length < 1) problems.push(`no <${tag}> landmark`);
  }
  if (document.querySelectorAll("main").length > 1) problems.push("more than one <main>");
  const named = (el) => {
    if ((el.getAttribute("aria-label") || "").trim()) return true;
    const by = el.getAttribute("aria-labelledby");
    if (by && by.split(/\s+/).some((id) => document.getElementById(id)?.textContent.trim())) return true;
    if (el.labels && [...el.labels].some((l) => l.textContent.trim())) return true;
    if (el.matches("input, select, textarea")) return Boolean((el.title || "").trim());
    return Boolean((el.innerText || el.title || el.value || el.querySelector("img[alt]")?.alt || "").trim());
  };
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!named(el)) problems.push(`${describe(el)} has no accessible name`);
  }
  for (const el of clickable()) {
    if (!el.matches("input, select, textarea") && !named(el)) problems.push(`${describe(el)} has no accessible name`);
  }
  return problems;
};

// Marks every control a mouse user can click with its number and records how it looks
// unfocused, so that the Tab walk can tell which were reached and whether focus shows.
window.__a11y.mark = () => {
  const { clickable } = window.__a11y;
  const look = (el) => { const s = getComputedStyle(el); return [s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow, s.borderColor, s.backgroundColor, s.textDecorationLine].join("|"); };
  window.__a11yLook = look;
  const controls = clickable();
  controls.forEach((el, i) => { el.dataset.a11y = String(i); el.dataset.a11yLook = look(el); });
  return controls.map((el) => [window.__a11y.describe(el), el.type === "radio" ? el.name : ""]);
};

window.__a11y.focused = () => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const index = el.dataset.a11y ?? "";
  const visible = el.dataset.a11yLook === undefined || window.__a11yLook(el) !== el.dataset.a11yLook;
  return [index, visible, window.__a11y.describe(el)];
};

// Puts the keyboard at the top of the page, as a fresh load does: a focus point before
// everything, out of the Tab order itself (an autofocus field would start further down).
window.__a11y.fromTheTop = () => {
  window.scrollTo(0, 0);
  const start = document.createElement("span");
  start.tabIndex = -1;
  document.body.prepend(start);
  start.focus();
};
