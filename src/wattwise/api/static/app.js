// wattwise dashboard: plain JS, no build step. Reads the REST API, listens to SSE, and
// offers operator controls. Every value from the server goes through textContent (no HTML).
"use strict";

const S = { token: null, me: null, site: null, headroom: null, ups: null, status: null, plan: null,
  journal: null, forecasts: null, predictions: null, history: {}, lastEvent: null, abort: null };

// ---------- helpers ----------------------------------------------------------------------
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}
const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function fmtW(w) {
  if (w === null || w === undefined) return "n/a";
  const a = Math.abs(w);
  if (a >= 1e6) return (w / 1e6).toFixed(2) + " MW";
  if (a >= 1e3) return (w / 1e3).toFixed(1) + " kW";
  return w.toFixed(0) + " W";
}
const pct = (f) => (100 * f).toFixed(1) + " %";
function fmtDur(s) {
  if (s === null || s === undefined) return "n/a";
  if (s >= 3600) return (s / 3600).toFixed(1) + " h";
  if (s >= 60) return (s / 60).toFixed(0) + " min";
  return s.toFixed(0) + " s";
}
const fmtTime = (iso) => new Date(iso).toISOString().slice(11, 19) + "Z";
const canOperate = () => S.me && (S.me.role === "operator" || S.me.role === "admin");
function level(frac) { return frac > 0.95 ? "bad" : frac > 0.8 ? "warn" : ""; }
function bar(frac, label) {
  const fill = el("i", {});
  fill.style.width = Math.min(100, Math.max(0, 100 * frac)).toFixed(1) + "%";  // CSSOM: allowed by the CSP
  return el("div", { class: "bar " + level(frac), role: "meter", "aria-valuenow": (100 * frac).toFixed(1),
    "aria-valuemin": "0", "aria-valuemax": "100" }, fill, label ? el("b", { text: label }) : null);
}
function meter(name, load, cap, frac, extra) {
  return el("div", { class: "meter", "data-id": name, "data-load-w": load.toFixed(1) },
    el("span", { class: "name", title: name }, extra || null, name),
    bar(frac, pct(frac)),
    el("span", { class: "val", text: `${fmtW(load)} / ${fmtW(cap)}` }));
}
function empty(text, testid) { return el("p", { class: "empty", "data-testid": testid || null, text }); }
function toast(text, bad) {
  const t = $("toast");
  t.textContent = text; t.className = "toast" + (bad ? " bad" : ""); t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

// ---------- API ---------------------------------------------------------------------------
class ApiError extends Error { constructor(status, detail) { super(detail); this.status = status; } }
async function api(path, opts) {
  const o = opts || {};
  const headers = { Authorization: "Bearer " + S.token };
  if (o.body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method: o.method || "GET", headers,
    body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  if (r.status === 401) { signOut("session expired or token refused"); throw new ApiError(401, "unauthorized"); }
  if (!r.ok) {
    let detail = r.statusText;
    try { const p = await r.json(); detail = p.detail || p.title || detail; } catch (e) { /* not JSON */ }
    throw new ApiError(r.status, detail);
  }
  return r.status === 204 ? null : r.json();
}

// ---------- sign in ---------------------------------------------------------------------
function signOut(message) {
  S.token = null; S.me = null;
  sessionStorage.removeItem("ww_token"); localStorage.removeItem("ww_token");
  if (S.abort) S.abort.abort();
  $("main").hidden = true; $("login").hidden = false; $("logout").hidden = true; $("whoami").textContent = "";
  $("login-error").textContent = message || "";
}
async function signIn(token, remember) {
  S.token = token;
  try {
    S.me = await api("/api/v1/me");
  } catch (e) {
    signOut(e.status === 401 ? "token refused" : "cannot reach the server"); return;
  }
  (remember ? localStorage : sessionStorage).setItem("ww_token", token);
  $("login").hidden = true; $("main").hidden = false; $("logout").hidden = false;
  $("whoami").textContent = `${S.me.name} (${S.me.role})`;
  $("whoami").dataset.role = S.me.role;
  await refreshAll();
  stream();
}

// ---------- loading ---------------------------------------------------------------------
const LOADERS = {
  site: async () => { S.site = await api("/api/v1/site"); renderSite(); },
  headroom: async () => { S.headroom = await api("/api/v1/headroom?max_pdus=24"); renderChain(); },
  ups: async () => { S.ups = await api("/api/v1/ups"); renderUps(); },
  status: async () => { S.status = await api("/api/v1/status"); renderStatus(); },
  plan: async () => { S.plan = await api("/api/v1/plan"); renderPlan(); },
  journal: async () => { S.journal = await api("/api/v1/journal?limit=50"); renderJournal(); },
  forecast: async () => { S.forecasts = await api("/api/v1/forecasts"); await renderForecast(); },
  predictions: async () => { S.predictions = await api("/api/v1/predictions"); renderRisk(); },
};
const ON_EVENT = { headroom: ["headroom", "ups"], status: ["status", "headroom"], plan: ["plan", "status"],
  journal: ["journal"], forecast: ["forecast"], predictions: ["predictions"] };
const pending = new Set();
function schedule(names) {
  names.forEach((n) => pending.add(n));
  if (schedule.timer) return;
  schedule.timer = setTimeout(async () => {
    schedule.timer = null;
    const todo = [...pending]; pending.clear();
    await Promise.all(todo.map((n) => LOADERS[n]().catch((e) => console.warn(n, e))));
  }, 150);
}
async function refreshAll() {
  await LOADERS.site().catch(() => {});
  await Promise.all(Object.keys(LOADERS).filter((k) => k !== "site").map((k) => LOADERS[k]().catch(() => {})));
}

// ---------- live stream (fetch, so the token stays in a header) -------------------------
function setLive(on) {
  const b = $("live");
  b.className = "badge " + (on ? "ok" : "warn");
  b.textContent = on ? "live" + (S.lastEvent ? " · " + S.lastEvent : "") : "reconnecting";
}
async function stream() {
  if (S.abort) S.abort.abort();
  const ctl = new AbortController(); S.abort = ctl;
  while (S.token && !ctl.signal.aborted) {
    try {
      const r = await fetch("/api/v1/events", { headers: { Authorization: "Bearer " + S.token }, signal: ctl.signal });
      if (r.status === 401) { signOut("token refused"); return; }
      if (!r.ok) throw new Error("stream " + r.status);
      setLive(true);
      // Whatever changed while we were not subscribed was not pushed: re-read everything once.
      schedule(Object.keys(ON_EVENT).flatMap((k) => ON_EVENT[k]));
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) { onFrame(buf.slice(0, i)); buf = buf.slice(i + 2); }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    setLive(false);
    await new Promise((res) => setTimeout(res, 2000));
  }
}
function onFrame(frame) {
  let kind = null;
  for (const line of frame.split("\n")) if (line.startsWith("event:")) kind = line.slice(6).trim();
  if (!kind || !ON_EVENT[kind]) return;
  S.lastEvent = new Date().toISOString().slice(11, 19) + "Z";
  setLive(true);
  schedule(ON_EVENT[kind]);
}

// ---------- rendering: header -----------------------------------------------------------
function renderSite() {
  $("site-name").textContent = S.site.name;
  const sel = $("whatif-target"); sel.replaceChildren();
  const feeds = S.site.nodes.filter((n) => n.kind === "feed");
  for (const side of [...new Set(feeds.map((f) => f.side))].sort()) {
    const ids = feeds.filter((f) => f.side === side).map((f) => f.id);
    sel.append(el("option", { value: ids.join(","), text: `side ${side} (${ids.join(", ")})` }));
  }
  for (const n of S.site.nodes.filter((x) => x.kind !== "pdu")) sel.append(el("option", { value: n.id, text: `${n.kind} ${n.id}` }));
}
function renderStatus() {
  const st = S.status;
  const m = $("mode");
  m.textContent = "mode " + st.mode; m.className = "badge " + (st.mode === "armed" ? "armed" : st.mode === "dry-run" ? "dry-run" : "");
  m.dataset.mode = st.mode;
  const r = $("running");
  r.textContent = st.running ? "controller running" : "controller not running";
  r.className = "badge " + (st.running ? "ok" : "warn");
  r.title = st.message || "";
  $("leader").textContent = "leader " + (st.leader ? st.leader + (st.is_leader ? " (this)" : "") : "none");
  const stale = st.staleness_s;
  const sb = $("staleness");
  sb.textContent = stale === null ? "no telemetry" : "staleness " + fmtDur(stale) + (st.stale_devices ? ` · ${st.stale_devices} stale` : "");
  sb.className = "badge " + (stale === null ? "muted" : stale > 60 ? "bad" : stale > 15 ? "warn" : "ok");
  const rejected = st.rejected_readings.reduce((a, x) => a + x.count, 0);
  if (rejected) sb.textContent += ` · ${rejected} rejected`;
  for (const b of document.querySelectorAll(".mode-btn")) {
    b.classList.toggle("active", b.dataset.mode === st.mode);
    b.disabled = !canOperate();
  }
  for (const id of ["whatif-run", "maint-on", "maint-off"]) $(id).disabled = !canOperate();
  $("ctl-note").textContent = canOperate() ? (st.running ? "" : st.message) : "read-only: your token has the viewer role";
  if (S.headroom) renderChain();
}

// ---------- rendering: power chain ------------------------------------------------------
function renderChain() {
  const h = S.headroom; if (!h || !S.site) return;
  $("chain-source").textContent = `${h.source} · ${fmtTime(h.at)}`;
  const sides = $("sides"); sides.replaceChildren();
  for (const s of h.sides) sides.append(meter("side " + s.side, s.load_w, s.capacity_w, s.load_frac));
  const imb = h.imbalance_frac;
  sides.append(el("div", { class: "imb " + (imb > 0.1 ? "warn" : ""), "data-testid": "imbalance",
    text: `A/B imbalance ${pct(imb)}` + (imb > 0.1 ? " — unbalanced" : " — balanced") }));
  const load = new Map(h.nodes.map((n) => [n.id, n]));
  const phases = new Map();
  for (const p of h.phases) { if (!phases.has(p.pdu_id)) phases.set(p.pdu_id, []); phases.get(p.pdu_id).push(p); }
  const kids = new Map();
  for (const n of S.site.nodes) if (n.parent) { if (!kids.has(n.parent)) kids.set(n.parent, []); kids.get(n.parent).push(n); }
  const racksOf = new Map();
  for (const r of S.site.racks) for (const p of r.pdus) { if (!racksOf.has(p)) racksOf.set(p, []); racksOf.get(p).push(r.id); }
  const maint = new Set(S.status ? S.status.maintenance : []);
  const render = (n) => {
    const l = load.get(n.id);
    if (!l) return null;  // a PDU outside the busiest shown
    const tag = el("span", { class: "kind", text: n.kind });
    const box = el("div", { class: "node", "data-node": n.id },
      meter(n.id, l.load_w, l.capacity_w, l.load_frac, tag),
      maint.has(n.id) ? el("span", { class: "maint", text: "in maintenance" }) : null);
    if (phases.has(n.id)) {
      box.append(el("div", { class: "phases" }, phases.get(n.id).map((p) =>
        el("div", { title: `L${p.phase}: ${fmtW(p.load_w)} / ${fmtW(p.capacity_w)}` }, bar(p.load_frac, "L" + p.phase)))));
      const racks = racksOf.get(n.id) || [];
      if (racks.length) box.append(el("div", { class: "racks", text: "racks " + racks.slice(0, 6).join(", ") + (racks.length > 6 ? ` +${racks.length - 6}` : "") }));
    }
    for (const k of kids.get(n.id) || []) { const c = render(k); if (c) box.append(c); }
    return box;
  };
  const tree = $("tree"); tree.replaceChildren();
  const feeds = S.site.nodes.filter((n) => n.kind === "feed");
  for (const side of [...new Set(feeds.map((f) => f.side))].sort()) {
    const col = el("div", { class: "side-col " + side, "data-side": side }, el("h3", { text: "side " + side }));
    for (const f of feeds.filter((x) => x.side === side)) { const c = render(f); if (c) col.append(c); }
    tree.append(col);
  }
  $("pdu-note").textContent = h.pdus_shown < h.pdus_total ? `showing the ${h.pdus_shown} busiest of ${h.pdus_total} PDUs` : "";
}

function renderUps() {
  const box = $("ups"); box.replaceChildren();
  if (!S.ups || !S.ups.length) { box.append(empty("no UPS in this site")); return; }
  if (S.ups.length > 3) { renderUpsCompact(box); return; }
  for (const u of S.ups) {
    const frac = u.capacity_w ? u.load_w / u.capacity_w : 0;
    const state = u.on_battery === null ? "state unknown (no telemetry)" : u.on_battery ? "ON BATTERY" : "on line";
    const charge = u.battery_charge_frac === null ? "charge n/a" : "charge " + pct(u.battery_charge_frac);
    box.append(el("div", { class: "ups-card", "data-ups": u.id },
      el("div", {}, el("strong", { text: u.id }), " ", el("span", { class: u.on_battery ? "error" : "sub", text: state })),
      meter("load", u.load_w, u.capacity_w, frac),
      el("div", {}, el("span", { class: "big", "data-testid": "ups-runtime", text: fmtDur(u.runtime_s) }),
        el("span", { class: "sub", text: ` runtime · ${charge} · health ${pct(u.state_of_health_frac)}` })),
      el("div", { class: "sub", text: u.runtime_basis })));
  }
}

function renderUpsCompact(box) {
  // Many UPS (a multi-hall site): one line each, on-battery and shortest runtime first.
  const ups = S.ups.slice().sort((a, b) => (b.on_battery === true) - (a.on_battery === true)
    || (a.runtime_s ?? Infinity) - (b.runtime_s ?? Infinity));
  for (const u of ups) {
    const frac = u.capacity_w ? u.load_w / u.capacity_w : 0;
    const state = u.on_battery === null ? "" : u.on_battery ? "ON BATTERY " : "";
    box.append(el("div", { class: "ups-row", "data-ups": u.id },
      meter(u.id, u.load_w, u.capacity_w, frac),
      el("span", { class: "rt" + (u.on_battery ? " error" : ""), "data-testid": "ups-runtime",
        title: u.runtime_basis, text: state + fmtDur(u.runtime_s) })));
  }
  box.append(el("p", { class: "note", text: "runtime: " + S.ups[0].runtime_basis }));
}

// ---------- forecast chart -------------------------------------------------------------
async function renderForecast() {
  const box = $("forecast"); const sel = $("fc-series");
  const items = S.forecasts ? S.forecasts.items : [];
  if (!items.length) {
    sel.hidden = true;
    box.replaceChildren(empty(S.forecasts && S.forecasts.note ? S.forecasts.note : "no forecasts yet", "forecast-empty"));
    return;
  }
  sel.hidden = false;
  const keys = items.map((f) => `${f.device_id}|${f.metric}`);
  const prev = sel.value;
  sel.replaceChildren(...items.map((f, i) => el("option", { value: keys[i], text: `${f.device_id} ${f.metric}` })));
  if (keys.includes(prev)) sel.value = prev;
  const fc = items[Math.max(0, keys.indexOf(sel.value))];
  let hist = [];
  try {
    const h = await api(`/api/v1/devices/${encodeURIComponent(fc.device_id)}/history?metric=${fc.metric}&max_points=200`);
    hist = h.points.filter((p) => p.t_s <= fc.issued_t_s);
  } catch (e) { /* history optional */ }
  box.replaceChildren(chart(fc, hist));
}
function chart(fc, hist) {
  const W = 800, H = 260, L = 56, R = 10, T = 10, B = 26;
  const pts = fc.points;
  const ts = [...hist.map((p) => p.t_s), ...pts.map((p) => p.t_s)];
  const vs = [...hist.map((p) => p.mean), ...pts.flatMap((p) => [p.lower, p.upper])];
  // Scale to the capacity only when it is near the forecast; far above, it would flatten the band.
  const capOnScale = fc.capacity !== null && fc.capacity <= 2 * Math.max(...vs);
  if (capOnScale) vs.push(fc.capacity);
  const t0 = Math.min(...ts), t1 = Math.max(...ts);
  const v0 = Math.min(0, ...vs), v1 = Math.max(...vs) * 1.1 || 1;
  const x = (t) => L + ((t - t0) / Math.max(t1 - t0, 1e-9)) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / Math.max(v1 - v0, 1e-9)) * (H - T - B);
  const s = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img",
    "aria-label": `forecast of ${fc.device_id} ${fc.metric}` });
  s.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
  s.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  const band = pts.map((p) => `${x(p.t_s)},${y(p.upper)}`).concat(pts.slice().reverse().map((p) => `${x(p.t_s)},${y(p.lower)}`));
  s.append(svg("polygon", { class: "band", points: band.join(" "), "data-testid": "forecast-band" }));
  s.append(svg("polyline", { class: "mean", points: pts.map((p) => `${x(p.t_s)},${y(p.mean)}`).join(" ") }));
  if (hist.length) s.append(svg("polyline", { class: "hist", points: hist.map((p) => `${x(p.t_s)},${y(p.mean)}`).join(" ") }));
  if (capOnScale) s.append(svg("line", { class: "cap", x1: L, x2: W - R, y1: y(fc.capacity), y2: y(fc.capacity) }));
  const unit = fc.metric.endsWith("_w") ? fmtW : (v) => v.toFixed(2);
  for (const v of [v0, (v0 + v1) / 2, v1]) {
    const t = svg("text", { x: 4, y: y(v) + 4 }); t.textContent = unit(v); s.append(t);
  }
  const tl = svg("text", { x: x(fc.issued_t_s) - 12, y: H - 8 }); tl.textContent = "now"; s.append(tl);
  const te = svg("text", { x: W - R - 60, y: H - 8 }); te.textContent = "+" + fmtDur(t1 - fc.issued_t_s); s.append(te);
  const cap = el("p", { class: "note", text: `${fc.model}, ${pct(fc.interval_frac)} interval (band)` + (fc.capacity === null ? "" : capOnScale ? `, capacity ${unit(fc.capacity)} (dashed)` : `, capacity ${unit(fc.capacity)} (off scale)`) });
  return el("div", {}, s, cap);
}

// ---------- at risk, plan, journal -------------------------------------------------------
function renderRisk() {
  const box = $("risk"); const p = S.predictions;
  if (!p || !p.items.length) { box.replaceChildren(empty(p && p.note ? p.note : "nothing at risk", "risk-empty")); return; }
  box.replaceChildren(el("table", {},
    el("tr", {}, ["device", "risk", "p", "within", "why"].map((h) => el("th", { text: h }))),
    p.items.map((a) => el("tr", { "data-risk": a.device_id },
      el("td", { text: a.device_id }), el("td", { text: a.risk }),
      el("td", { class: a.probability_frac > 0.5 ? "error" : "", text: pct(a.probability_frac) }),
      el("td", { text: fmtDur(a.horizon_s) }), el("td", { text: a.reason })))));
}
function renderPlan() {
  const box = $("plan"); const p = S.plan;
  if (!p) return;
  const parts = [];
  if (!p.decisions.length && !p.actions.length) parts.push(empty(p.note || "no plan yet", "plan-empty"));
  for (const d of p.decisions) {
    const dec = d.decision;
    parts.push(el("div", { "data-decision": d.decision_id },
      el("strong", { text: dec.policy_name }), " ",
      el("span", { class: "state-" + (dec.status === "ok" ? "approved" : "pending"), text: dec.status }),
      el("ul", { class: "reasons" }, dec.reasons.map((r) => el("li", { text: r })))));
  }
  if (p.actions.length) {
    parts.push(el("table", { "data-testid": "actions" },
      el("tr", {}, ["action", "target", "value", "reason", "state", ""].map((h) => el("th", { text: h }))),
      p.actions.map((a) => el("tr", { "data-command": a.command_id },
        el("td", { text: a.action.kind }), el("td", { text: a.action.target_id + (a.action.dest_id ? " → " + a.action.dest_id : "") }),
        el("td", { text: a.action.value === null ? "" : String(a.action.value) }),
        el("td", { text: a.action.reason }),
        el("td", { class: "state-" + a.state, "data-testid": "action-state", text: a.state + (a.decided_by ? ` (${a.decided_by})` : "") }),
        el("td", {}, a.state === "pending" ? [
          el("button", { type: "button", "data-testid": "approve", disabled: !canOperate(), title: canOperate() ? "" : "operator role needed", onclick: () => decide(a.command_id, true) }, "Approve"),
          " ",
          el("button", { type: "button", "data-testid": "deny", disabled: !canOperate(), title: canOperate() ? "" : "operator role needed", onclick: () => decide(a.command_id, false) }, "Deny"),
        ] : [])))));
  }
  box.replaceChildren(...parts);
}
function renderJournal() {
  const ol = $("journal"); const j = S.journal;
  if (!j || !j.items.length) { ol.replaceChildren(el("li", { class: "empty", "data-testid": "journal-empty", text: "journal is empty: no operator or controller action yet" })); return; }
  ol.replaceChildren(...j.items.map((e) => el("li", { "data-seq": String(e.seq) },
    el("div", { class: "t", text: `${fmtTime(e.at)} · ${e.actor} (${e.role})` }),
    el("span", { class: "k", text: e.kind }), " ", el("span", { text: `${e.target}: ${e.detail}` }))));
}

// ---------- operator actions -----------------------------------------------------------
async function act(fn, okText) {
  try { const r = await fn(); if (okText) toast(typeof okText === "function" ? okText(r) : okText); return r; }
  catch (e) { toast(`refused (${e.status}): ${e.message}`, true); return null; }
}
async function setMode(mode) {
  if (mode === "armed" && !window.confirm("Arm the controller? It will execute approved actions.")) return;
  await act(() => api("/api/v1/mode", { method: "POST", body: { mode } }), "mode " + mode);
  schedule(["status", "journal"]);
}
async function decide(id, approve) {
  await act(() => api(`/api/v1/actions/${encodeURIComponent(id)}/${approve ? "approve" : "deny"}`, { method: "POST", body: {} }),
    approve ? "approved" : "denied");
  schedule(["plan", "journal", "status"]);
}
async function whatIf() {
  const lose = $("whatif-target").value.split(",").filter(Boolean);
  const r = await act(() => api("/api/v1/what-if", { method: "POST", body: { lose } }));
  if (!r) return;
  const box = $("whatif-result");
  box.replaceChildren(el("div", { class: "summary", "data-testid": "whatif-summary", text: r.summary }),
    ...whatIfRows(r.nodes).map((n) => meter(n.id, n.load_w, n.capacity_w, n.load_frac)),
    r.decision ? el("p", { class: "note", text: `plan: ${r.decision.policy_name} ${r.decision.status}, ${r.decision.actions.length} actions` })
      : el("p", { class: "note", text: "no policy ran: chain physics only" }));
  schedule(["journal"]);
}
function whatIfRows(nodes) {
  // Feeds always; then the busiest UPS (the ones that decide whether the loss is survivable).
  const feeds = nodes.filter((n) => n.kind === "feed");
  const ups = nodes.filter((n) => n.kind === "ups").sort((a, b) => b.load_frac - a.load_frac).slice(0, 6);
  return [...feeds, ...ups];
}
async function maintenance(on) {
  const id = $("maint-device").value.trim();
  if (!id) { toast("enter a device id", true); return; }
  await act(() => api(`/api/v1/devices/${encodeURIComponent(id)}/maintenance`, { method: "POST", body: { on } }),
    `${id} maintenance ${on ? "on" : "off"}`);
  schedule(["status", "journal"]);
}

// ---------- start ----------------------------------------------------------------------
function start() {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    signIn($("token-input").value.trim(), $("remember").checked);
    $("token-input").value = "";
  });
  $("logout").addEventListener("click", () => signOut(""));
  for (const b of document.querySelectorAll(".mode-btn")) b.addEventListener("click", () => setMode(b.dataset.mode));
  $("whatif-run").addEventListener("click", whatIf);
  $("maint-on").addEventListener("click", () => maintenance(true));
  $("maint-off").addEventListener("click", () => maintenance(false));
  $("fc-series").addEventListener("change", () => renderForecast());
  setInterval(() => { if (S.token) schedule(["status", "plan", "journal", "forecast", "predictions"]); }, 15000);
  // A wall screen may open /#token=...: the fragment never reaches the server or its logs.
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { history.replaceState(null, "", location.pathname); signIn(decodeURIComponent(m[1]), false); return; }
  const saved = sessionStorage.getItem("ww_token") || localStorage.getItem("ww_token");
  if (saved) signIn(saved, !!localStorage.getItem("ww_token")); else signOut("");
}
document.addEventListener("DOMContentLoaded", start);
