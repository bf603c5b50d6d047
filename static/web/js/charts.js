// Per node live charts (uPlot): CPU %, memory, pids, and rx/tx rate of each interface.
// History comes from the metrics API when the page opens, the node or the window changes
// (the server keeps each second's sample for an hour, each minute's average for a week);
// live samples arrive from the lab's stream and are kept for every node.

import uPlot from "uplot";
import { get } from "labmgr/api.js";

const DEFAULT_WINDOW = 600; // seconds
const MIB = 1024 * 1024;

export class Charts {
  constructor({ container, select, windowSelect, empty, historyUrl }) {
    Object.assign(this, { container, select, windowSelect, empty, historyUrl });
    this.samples = new Map(); // node -> [{t, ...sample}] oldest first
    this.plots = [];
    this.marks = []; // [{t, label, ok}]: live changes and scenario steps, drawn on every chart
    this.node = select?.value || null;
    this.keep = Number(windowSelect?.value) || DEFAULT_WINDOW;
  }

  start() {
    if (!this.node) return;
    this.select.addEventListener("change", () => {
      this.node = this.select.value;
      this.loadHistory();
    });
    this.windowSelect?.addEventListener("change", () => {
      this.keep = Number(this.windowSelect.value) || DEFAULT_WINDOW;
      this.samples.clear();
      this.loadHistory();
    });
    this.loadHistory();
    window.addEventListener("resize", () => this.resize());
  }

  reset() {
    this.samples.clear();
    this.marks = [];
    this.draw();
  }

  // A vertical line at `t` (epoch seconds) on every chart, labelled: what was changed.
  mark(t, label, ok = true) {
    if (this.marks.some((m) => m.t === t && m.label === label)) return;
    this.marks.push({ t, label, ok });
    this.container.dataset.marks = String(this.marks.length);
    for (const plot of this.plots) plot.redraw(false);
  }

  drawMarks(u) {
    const { ctx } = u;
    const ratio = window.devicePixelRatio || 1;
    const { min, max } = u.scales.x;
    ctx.save();
    ctx.font = `${10 * ratio}px sans-serif`;
    ctx.lineWidth = ratio;
    ctx.setLineDash([4 * ratio, 3 * ratio]);
    for (const m of this.marks) {
      if (min == null || m.t < min || m.t > max) continue;
      const x = u.valToPos(m.t, "x", true);
      ctx.strokeStyle = ctx.fillStyle = m.ok ? "#6f42c1" : "#b42318";
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      ctx.fillText(m.label, x + 3 * ratio, u.bbox.top + 10 * ratio);
    }
    ctx.restore();
  }

  async loadHistory() {
    const since = Math.floor(Date.now() / 1000) - this.keep;
    const node = this.node;
    try {
      const body = await get(`${this.historyUrl}?node=${encodeURIComponent(node)}&since=${since}`);
      this.merge(node, body.samples || []);
    } catch {
      // no history (never deployed, or the server is away): live samples still come
    }
    if (node === this.node) this.draw();
  }

  add(samples) {
    const touched = new Set();
    for (const sample of samples || []) {
      this.merge(sample.node, [sample]);
      touched.add(sample.node);
    }
    if (touched.has(this.node)) this.draw();
  }

  merge(node, samples) {
    const list = this.samples.get(node) || [];
    const known = new Set(list.map((s) => s.t));
    for (const s of samples) if (!known.has(s.t)) list.push(s);
    list.sort((a, b) => a.t - b.t);
    const limit = Date.now() / 1000 - this.keep;
    this.samples.set(node, list.filter((s) => s.t >= limit));
  }

  draw() {
    const list = this.samples.get(this.node) || [];
    // How many samples the charts show, for whoever checks that they grow.
    this.container.dataset.points = String(list.length);
    if (this.empty) this.empty.hidden = list.length > 0;
    if (!list.length) {
      this.destroy();
      return;
    }
    const t = list.map((s) => s.t);
    const ifnames = [...new Set(list.flatMap((s) => (s.interfaces || []).map((i) => i.ifname)))].sort();
    const rate = (name, key) => list.map((s) => {
      const iface = (s.interfaces || []).find((i) => i.ifname === name);
      return iface ? (iface[key] || 0) / 1000 : null;
    });
    const specs = [
      { title: "CPU (%)", id: "cpu", series: [["CPU %", list.map((s) => s.cpu_percent), "#0d6e6e"]] },
      { title: "Memory (MiB)", id: "memory", series: [
        ["in use", list.map((s) => s.memory_current / MIB), "#0b5cad"],
        ...(list.some((s) => s.memory_max) ? [["limit", list.map((s) => (s.memory_max ? s.memory_max / MIB : null)), "#b42318"]] : []),
      ] },
      { title: "Processes", id: "pids", series: [["pids", list.map((s) => s.pids), "#8a5300"]] },
      { title: "Interface rates (kbit/s)", id: "rates", series: ifnames.flatMap((name, i) => [
        [`${name} rx`, rate(name, "rx_bps"), PALETTE[(2 * i) % PALETTE.length]],
        [`${name} tx`, rate(name, "tx_bps"), PALETTE[(2 * i + 1) % PALETTE.length]],
      ]) },
    ];
    const shape = specs.map((s) => s.id + ":" + s.series.map((x) => x[0]).join(",")).join("|");
    if (shape !== this.shape) {
      this.destroy();
      this.shape = shape;
      this.plots = specs.map((spec) => this.create(spec, t));
    } else {
      specs.forEach((spec, i) => this.plots[i].setData([t, ...spec.series.map((x) => x[1])]));
    }
  }

  create(spec, t) {
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.chart = spec.id;
    const title = document.createElement("h4");
    title.textContent = spec.title;
    box.append(title);
    this.container.append(box);
    const options = {
      width: Math.max(box.clientWidth - 16, 200),
      height: 150,
      series: [{}, ...spec.series.map(([label, , stroke]) => ({ label, stroke, width: 2, spanGaps: true }))],
      axes: [{}, { size: 50 }],
      scales: { x: { time: true } },
      legend: { live: false },
      hooks: { draw: [(u) => this.drawMarks(u)] },
    };
    return new uPlot(options, [t, ...spec.series.map((x) => x[1])], box);
  }

  resize() {
    for (const plot of this.plots) {
      const box = plot.root.parentElement;
      plot.setSize({ width: Math.max(box.clientWidth - 16, 200), height: 150 });
    }
  }

  destroy() {
    for (const plot of this.plots) plot.destroy();
    this.plots = [];
    this.shape = null;
    this.container.replaceChildren();
  }
}

const PALETTE = ["#0b5cad", "#1a7f37", "#8a5300", "#6f42c1", "#b42318", "#0d6e6e"];
