// plateveil review pages: queue navigation, and on a job page the plate editor.
// No build step, no libraries. Coordinates are image pixels (the SVG viewBox is the photo's size).
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const SVG = "http://www.w3.org/2000/svg";

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body || {}),
    }).then(async (resp) => {
      let data = null;
      try { data = await resp.json(); } catch (e) { data = null; }
      if (!resp.ok) throw new Error((data && data.detail) || resp.statusText);
      return data;
    });
  }

  // forms that change state (log out) go through fetch so that they carry the CSRF header
  document.querySelectorAll("form[data-csrf-form]").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      fetch(form.action, {method: "POST", credentials: "same-origin", headers: {"X-CSRF-Token": csrf}})
        .then(() => { window.location = "/review/login"; });
    });
  });

  const typing = (ev) => ["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName);

  // ---------------------------------------------------------------- queue
  const table = document.getElementById("queue");
  if (table) {
    const rows = Array.from(table.querySelectorAll("tbody tr[data-href]"));
    let cur = rows.length ? 0 : -1;
    const mark = () => rows.forEach((r, i) => r.classList.toggle("current", i === cur));
    mark();
    rows.forEach((r) => r.addEventListener("click", () => { window.location = r.dataset.href; }));
    document.addEventListener("keydown", (ev) => {
      if (typing(ev) || cur < 0) return;
      if (ev.key === "j" || ev.key === "ArrowDown") { cur = Math.min(cur + 1, rows.length - 1); mark(); ev.preventDefault(); }
      else if (ev.key === "k" || ev.key === "ArrowUp") { cur = Math.max(cur - 1, 0); mark(); ev.preventDefault(); }
      else if (ev.key === "Enter" || ev.key === "o") { window.location = rows[cur].dataset.href; }
    });
    return;
  }

  // ---------------------------------------------------------------- job page
  const dataEl = document.getElementById("job-data");
  if (!dataEl) return;
  const job = JSON.parse(dataEl.textContent);
  const svgs = [document.getElementById("svg-original"), document.getElementById("svg-concealed")];
  const statusEl = document.getElementById("status");
  const styleEl = document.getElementById("style");

  // the editable state: the job's plates (removable), the added ones, the tool, the selection
  const removed = new Set();
  const added = [];          // each: [[x,y] x4]
  let selected = null;       // {kind: "plate"|"added", index}
  let tool = null;           // "quad" | "box" | null
  let pending = [];          // quad clicks so far
  let dragStart = null, dragNow = null;
  let busy = false;

  function say(text, cls) { statusEl.textContent = text; statusEl.className = cls || ""; }
  function dirty() { return removed.size > 0 || added.length > 0 || styleEl.value !== job.style; }

  function el(name, attrs) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }
  const pts = (poly) => poly.map((p) => p[0] + "," + p[1]).join(" ");
  const stroke = () => Math.max(2, Math.round(job.width / 250));

  function draw() {
    for (const svg of svgs) {
      svg.replaceChildren();
      job.plates.forEach((p, i) => {
        const cls = ["plate", removed.has(i) ? "removed" : "", p.origin === "reviewer" ? "by-reviewer" : "",
                     selected && selected.kind === "plate" && selected.index === i ? "selected" : ""].join(" ");
        const poly = el("polygon", {points: pts(p.polygon), class: cls, "stroke-width": stroke(),
                                    "data-kind": "plate", "data-index": i});
        const t = el("title", {}); t.textContent = "plate " + i + (p.score != null ? " score " + p.score : " (added by a reviewer)");
        poly.appendChild(t);
        svg.appendChild(poly);
      });
      added.forEach((q, i) => {
        const sel = selected && selected.kind === "added" && selected.index === i ? " selected" : "";
        svg.appendChild(el("polygon", {points: pts(q), class: "added" + sel, "stroke-width": stroke(),
                                       "data-kind": "added", "data-index": i}));
      });
      if (pending.length) {
        svg.appendChild(el("polyline", {points: pts(pending), class: "pending", "stroke-width": stroke()}));
        pending.forEach((p) => svg.appendChild(el("circle", {cx: p[0], cy: p[1], r: stroke() * 2, class: "pending-dot"})));
      }
      if (dragStart && dragNow) {
        svg.appendChild(el("polygon", {points: pts(boxQuad(dragStart, dragNow)), class: "pending", "stroke-width": stroke()}));
      }
      svg.classList.toggle("drawing", tool !== null);
    }
    document.getElementById("tool-quad").classList.toggle("active", tool === "quad");
    document.getElementById("tool-box").classList.toggle("active", tool === "box");
    document.getElementById("save").disabled = busy || !dirty();
    if (!busy && dirty()) say(`unsaved: +${added.length} -${removed.size}` + (styleEl.value !== job.style ? `, style ${styleEl.value}` : ""), "dirty");
  }

  function boxQuad(a, b) {
    const x1 = Math.min(a[0], b[0]), x2 = Math.max(a[0], b[0]), y1 = Math.min(a[1], b[1]), y2 = Math.max(a[1], b[1]);
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]];
  }

  function toImage(svg, ev) {
    const r = svg.getBoundingClientRect();
    const x = (ev.clientX - r.left) * job.width / r.width, y = (ev.clientY - r.top) * job.height / r.height;
    return [Math.round(Math.min(Math.max(x, 0), job.width) * 10) / 10,
            Math.round(Math.min(Math.max(y, 0), job.height) * 10) / 10];
  }

  function setTool(t) { tool = tool === t ? null : t; pending = []; dragStart = dragNow = null; draw(); }

  function deleteSelected() {
    if (!selected) { say("click a plate first", "warn"); return; }
    if (selected.kind === "plate") {
      if (removed.has(selected.index)) removed.delete(selected.index); else removed.add(selected.index);
    } else {
      added.splice(selected.index, 1);
      selected = null;
    }
    draw();
  }

  for (const svg of svgs) {
    svg.addEventListener("mousedown", (ev) => {
      if (ev.button !== 0) return;
      ev.preventDefault();
      if (tool === "box") { dragStart = toImage(svg, ev); dragNow = dragStart; draw(); return; }
      if (tool === "quad") {
        pending.push(toImage(svg, ev));
        if (pending.length === 4) { added.push(pending); selected = {kind: "added", index: added.length - 1}; pending = []; tool = null; }
        draw();
        return;
      }
      const kind = ev.target.dataset && ev.target.dataset.kind;
      selected = kind ? {kind: kind, index: Number(ev.target.dataset.index)} : null;
      draw();
    });
    svg.addEventListener("mousemove", (ev) => { if (dragStart) { dragNow = toImage(svg, ev); draw(); } });
    svg.addEventListener("mouseup", (ev) => {
      if (!dragStart) return;
      const end = toImage(svg, ev);
      const q = boxQuad(dragStart, end);
      dragStart = dragNow = null;
      if ((q[1][0] - q[0][0]) >= 2 && (q[2][1] - q[1][1]) >= 2) {
        added.push(q); selected = {kind: "added", index: added.length - 1}; tool = null;
      }
      draw();
    });
  }

  function save() {
    if (busy || !dirty()) return;
    busy = true; say("saving...", "busy"); draw();
    const body = {revision: job.revision, add: added, remove: Array.from(removed).sort((a, b) => a - b)};
    if (styleEl.value !== job.style) body.style = styleEl.value;
    post(job.corrections_url, body).then((res) => {
      job.revision = res.revision; job.plates = res.plates; job.style = res.style;
      removed.clear(); added.length = 0; selected = null; busy = false;
      const img = document.getElementById("img-concealed");
      img.src = img.src.replace(/\?v=\d+$/, "") + "?v=" + res.revision;
      say(`saved: revision ${res.revision}, ${res.plate_count} plate${res.plate_count === 1 ? "" : "s"}`, "ok");
      document.body.dataset.revision = String(res.revision);
      draw();
    }).catch((err) => { busy = false; say("not saved: " + err.message, "error"); draw(); });
  }

  function accept() {
    if (dirty()) { save(); return; }
    post(job.accept_url).then(() => {
      say("accepted", "ok");
      if (job.next) window.location = job.next;
    }).catch((err) => say("not accepted: " + err.message, "error"));
  }

  document.getElementById("tool-quad").addEventListener("click", () => setTool("quad"));
  document.getElementById("tool-box").addEventListener("click", () => setTool("box"));
  document.getElementById("tool-delete").addEventListener("click", deleteSelected);
  document.getElementById("save").addEventListener("click", save);
  document.getElementById("accept").addEventListener("click", accept);
  styleEl.addEventListener("change", draw);

  document.addEventListener("keydown", (ev) => {
    if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if (k === "a") setTool("quad");
    else if (k === "b") setTool("box");
    else if (k === "d" || k === "Delete" || k === "Backspace") deleteSelected();
    else if (k === "Escape") { tool = null; pending = []; dragStart = dragNow = null; selected = null; draw(); }
    else if (k === "s") save();
    else if (k === "Enter") accept();
    else if ((k === "n" || k === "ArrowRight") && job.next) window.location = job.next;
    else if ((k === "p" || k === "ArrowLeft") && job.prev) window.location = job.prev;
    else return;
    ev.preventDefault();
  });

  document.body.dataset.revision = String(job.revision);
  draw();
  say(job.plates.length + " plate" + (job.plates.length === 1 ? "" : "s") + ", revision " + job.revision);
})();
