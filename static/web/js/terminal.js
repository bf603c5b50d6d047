// Terminals: xterm.js on a node's shell through `ws/labs/{id}/nodes/{node}/terminal`.
// Keystrokes go as binary frames, resizes as `{"resize": [cols, rows]}`; output comes
// back as binary frames. Each pane is resizable and several may be open at once.

const { Terminal } = window;
const { FitAddon } = window.FitAddon || {};

export function startTerminals({ page, open }) {
  const area = document.getElementById("terminals");
  const form = document.getElementById("open-terminal");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    openTerminal(area, page, document.getElementById("terminal-node").value);
  });
  for (const node of open) openTerminal(area, page, node);
}

export function openTerminal(area, page, node) {
  const pane = document.createElement("section");
  pane.className = "term";
  pane.dataset.node = node;
  pane.setAttribute("aria-label", `Terminal on ${node}`);
  const head = document.createElement("div");
  head.className = "term-head";
  const title = document.createElement("strong");
  title.textContent = node;
  const state = document.createElement("span");
  state.className = "term-state";
  state.textContent = "connecting…";
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = "Close";
  close.setAttribute("aria-label", `Close the terminal on ${node}`);
  head.append(title, state, close);
  const body = document.createElement("div");
  body.className = "term-body";
  pane.append(head, body);
  area.append(pane);

  const term = new Terminal({ cursorBlink: true, fontSize: 13, fontFamily: "ui-monospace, DejaVu Sans Mono, monospace", theme: { background: "#0f1d25" } });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(body);
  fit.fit();

  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/ws/labs/${page.lab}/nodes/${encodeURIComponent(node)}/terminal?cols=${term.cols}&rows=${term.rows}`;
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  socket.onopen = () => { state.textContent = "connected"; term.focus(); };
  socket.onmessage = (message) => {
    term.write(typeof message.data === "string" ? message.data : new Uint8Array(message.data));
  };
  socket.onclose = (event) => {
    state.textContent = event.code === 4403
      ? "refused: only the lab's owner may open a terminal, and only while the lab runs"
      : "closed";
    term.write("\r\n\x1b[2m[the session has ended]\x1b[0m\r\n");
  };
  keepTabForTheShell(term, pane);
  term.onData((data) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
  });
  term.onResize(({ cols, rows }) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ resize: [cols, rows] }));
  });
  // Dragging the pane's corner resizes the terminal to fit it.
  const observer = new ResizeObserver(() => fit.fit());
  observer.observe(pane);
  close.addEventListener("click", () => {
    observer.disconnect();
    socket.close();
    term.dispose();
    pane.remove();
  });
  return { term, socket, pane };
}

// Tab belongs to the shell (completion), so a keyboard user leaves a terminal the way
// code editors let them: Escape, then Tab (or Shift+Tab) moves focus on. The Escape
// still reaches the shell; only the Tab right after it is taken.
const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

function keepTabForTheShell(term, pane) {
  let escaped = false;
  term.attachCustomKeyEventHandler((event) => {
    if (event.type !== "keydown") return true;
    if (event.key === "Tab" && escaped) {
      escaped = false;
      event.preventDefault();
      moveFocusOn(pane, term.textarea, event.shiftKey);
      return false;
    }
    // Shift pressed on the way to Shift+Tab is no key of its own.
    if (!["Shift", "Control", "Alt", "Meta"].includes(event.key)) escaped = event.key === "Escape";
    return true;
  });
}

function moveFocusOn(pane, from, back) {
  const body = pane.querySelector(".term-body");
  const stops = [...document.querySelectorAll(FOCUSABLE)].filter(
    (el) => el === from || (!body.contains(el) && el.checkVisibility()),
  );
  const next = stops[stops.indexOf(from) + (back ? -1 : 1)];
  (next || from).focus();
}
