// The dashboard page: renders /api/state, kept live by Server-Sent Events (/api/events), and
// polls /api/state while the stream is down. Every value is set with textContent (no HTML from
// data), and every URL is relative, so the page works at / and under a mount prefix.
"use strict";

const POLL_MS = 2000;
const RECONNECT_GRACE_MS = 3500;
let pollTimer = null;

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function num(x, digits) {
  if (x === null || x === undefined) return "-";
  return Number(x).toLocaleString("en-US", { maximumFractionDigits: digits ?? 4 });
}

function pct(x) {
  return x === null || x === undefined ? "-" : (100 * x).toFixed(2) + "%";
}

function setText(id, text) {
  const node = document.getElementById(id);
  if (node) node.textContent = text === null || text === undefined ? "-" : String(text);
}

function problem(id, text) {
  const node = document.getElementById(id);
  node.hidden = !text;
  node.textContent = text || "";
}

// Fills a table body: one row per item, cells from `cols` ([value fn, css class]).
function fillTable(selector, items, cols, testid, key) {
  const body = document.querySelector(selector + " tbody");
  const rows = (items || []).map((item) => {
    const tr = el("tr", { "data-testid": testid, "data-key": key(item) });
    for (const [fn, cls] of cols) tr.appendChild(el("td", cls ? { class: cls } : {}, fn(item)));
    return tr;
  });
  if (!rows.length) {
    const tr = el("tr", { class: "empty" });
    tr.appendChild(el("td", { colspan: String(cols.length) }, "none"));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function sparkline(live) {
  const ns = "http://www.w3.org/2000/svg";
  const w = 280, h = 60, pad = 3;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const series = [["live", live.equity]];
  if (live.backtest_pace) series.push(["ref", live.backtest_pace]);
  const values = series.flatMap(([, pts]) => pts.map((p) => p[1]));
  const lo = Math.min(...values), hi = Math.max(...values);
  const span = hi - lo || 1;
  for (const [cls, pts] of series) {
    const step = pts.length > 1 ? (w - 2 * pad) / (pts.length - 1) : 0;
    const d = pts.map((p, i) => `${(pad + i * step).toFixed(1)},` +
      `${(h - pad - ((p[1] - lo) / span) * (h - 2 * pad)).toFixed(1)}`).join(" ");
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("class", cls);
    line.setAttribute("points", d);
    line.setAttribute("data-testid", "spark-" + cls);
    svg.appendChild(line);
  }
  return svg;
}

function pnlCard(row) {
  const card = el("div", { class: "card", "data-testid": "pnl-card", "data-key": row.deployment_id });
  card.appendChild(el("b", {}, row.deployment_id));
  const lv = row.live;
  const line = (label, value, testid) => {
    const p = el("div", {}, label + ": ");
    p.appendChild(el("span", testid ? { "data-testid": testid } : {}, value));
    card.appendChild(p);
  };
  if (lv) {
    line("live P&L", num(lv.total_pnl, 2) + " (" + pct(lv.return) + ", " + lv.sessions +
      " sessions to " + lv.last + ")", "pnl-live");
    line("realized / unrealized", num(lv.realized_pnl, 2) + " / " + num(lv.unrealized_pnl, 2));
  }
  const bt = row.backtest;
  if (bt) {
    line("backtest run", bt.mlflow_run_id + " (" + bt.start + " to " + bt.end + ")");
    line("backtest annual return / Sharpe", pct(bt.annual_return) + " / " + num(bt.sharpe_ratio, 2),
      "pnl-backtest");
    if (lv && lv.backtest_pace_return !== undefined) {
      line("backtest pace over the same sessions", pct(lv.backtest_pace_return) +
        " (live vs backtest " + pct(lv.vs_backtest) + ")", "pnl-vs-backtest");
    }
  }
  const rp = row.replay;
  if (rp) {
    line("replay vs backtest orders", `matched ${rp.both}, live only ${rp.live_only}, ` +
      `backtest only ${rp.backtest_only} (${rp.first} to ${rp.last})`, "pnl-replay");
  }
  if (row.note) card.appendChild(el("div", { class: "nobt", "data-testid": "pnl-note" }, row.note));
  if (lv && lv.equity.length) {
    card.appendChild(sparkline(lv));
    card.appendChild(el("div", { class: "legend" }, lv.backtest_pace ?
      "solid: live equity; dashed: backtest pace" : "live equity"));
  }
  return card;
}

function renderRunner(s) {
  const risk = s.risk || {};
  const badge = document.getElementById("risk-state");
  badge.textContent = risk.state || "unknown";
  badge.className = "badge " + (risk.state || "");
  const r = s.runner || {};
  setText("runner-state", r.running === null ? "runner: unknown" :
    r.running ? "runner holds the data root" + (r.holder ? ": " + r.holder : "") :
    "no runner running" + (risk.halt_file ? "; HALT file present" : ""));
  setText("journal-where", s.journal && s.journal.where ? "journal: " + s.journal.where : "");
  problem("journal-problem", s.journal && s.journal.problem);
  const reasons = [];
  for (const [scope, keys] of Object.entries(risk.reasons || {})) {
    for (const [key, state] of Object.entries(keys)) {
      const since = ((risk.since || {})[scope] || {})[key];
      const detail = (risk.details || {})[key];
      reasons.push(el("li", { "data-testid": "risk-reason" }, `${scope}: ${key} -> ${state}` +
        (since && since.at ? ` since ${since.at}` : "") + (detail ? ` (${detail})` : "")));
    }
  }
  document.getElementById("risk-reasons").replaceChildren(...reasons);
  const c = risk.last_cycle;
  setText("last-cycle", c ? `last cycle #${c.seq} ${c.state}, ${c.finished_at || c.started_at}` +
    `, ${c.n_intents} intents, ${c.n_submitted} submitted` : "");
}

function renderOutbox(o) {
  problem("outbox-problem", o.problem);
  setText("outbox-total", o.total);
  for (const st of ["pending", "inflight", "sent", "dead"]) {
    setText("outbox-count-" + st, (o.by_status || {})[st] ?? 0);
  }
  const channels = Object.entries(o.by_channel || {}).map(([ch, c]) => ({ ch, ...c }));
  const n = (st) => (c) => c[st] ?? 0;
  fillTable("#outbox-channels", channels, [[(c) => c.ch], [n("pending"), "num"],
    [n("inflight"), "num"], [n("sent"), "num"], [n("dead"), "num"]], "outbox-channel", (c) => c.ch);
  fillTable("#outbox-recent", o.recent, [[(r) => r.id], [(r) => (r.kind || "") + " " + r.event_id],
    [(r) => r.channel + "/" + r.target_kind], [(r) => r.plan_id], [(r) => r.status],
    [(r) => r.attempts, "num"], [(r) => r.not_before], [(r) => r.next_attempt_at],
    [(r) => r.sent_at || ""], [(r) => r.last_error, "err"]], "outbox-row", (r) => String(r.id));
  fillTable("#outbox-dead", o.dead_letters, [[(r) => r.id], [(r) => r.event_id],
    [(r) => r.channel], [(r) => r.plan_id], [(r) => r.attempts, "num"],
    [(r) => r.last_error, "err"]], "dead-row", (r) => String(r.id));
}

// One row per limit, one column per deployment (nested limits such as greeks.delta flattened).
function renderLimits(limits) {
  const deps = Object.keys(limits);
  const flat = (obj, prefix, out) => {
    for (const [k, v] of Object.entries(obj || {})) {
      if (v !== null && typeof v === "object") flat(v, prefix + k + ".", out);
      else out[prefix + k] = v;
    }
    return out;
  };
  const byDep = Object.fromEntries(deps.map((d) => [d, flat(limits[d], "", {})]));
  const names = [...new Set(deps.flatMap((d) => Object.keys(byDep[d])))].sort();
  const head = el("tr");
  head.appendChild(el("th", {}, "limit"));
  for (const d of deps) head.appendChild(el("th", {}, d));
  document.querySelector("#limits thead").replaceChildren(head);
  const cols = deps.map((d) => [(name) => (byDep[d][name] ?? "no cap"), "num"]);
  fillTable("#limits", names, [[(name) => name], ...cols], "limit-row", (name) => name);
}

function render(s) {
  setText("generated-at", s.generated_at);
  setText("version", s.version);
  renderRunner(s);
  fillTable("#deployments", s.deployments, [[(d) => d.id], [(d) => d.strategy],
    [(d) => d.manifest_id], [(d) => d.mlflow_run_id || "-"], [(d) => num(d.capital, 2), "num"],
    [(d) => (d.active ? "yes" : "no")]], "deployment-row", (d) => d.id);
  fillTable("#positions", s.positions, [[(p) => p.deployment_id], [(p) => p.symbol],
    [(p) => num(p.qty), "num"], [(p) => num(p.avg_price), "num"], [(p) => p.asset_class],
    [(p) => p.updated_at]], "position-row", (p) => p.deployment_id + "|" + p.symbol);
  fillTable("#orders", s.open_orders, [[(o) => o.client_order_id], [(o) => o.deployment_id],
    [(o) => o.status], [(o) => o.symbols], [(o) => o.side], [(o) => num(o.qty), "num"],
    [(o) => num(o.filled_qty), "num"], [(o) => num(o.limit_price), "num"], [(o) => o.created_at]],
    "order-row", (o) => o.client_order_id);
  fillTable("#fills", s.fills, [[(f) => f.exec_id], [(f) => f.deployment_id], [(f) => f.symbol],
    [(f) => num(f.qty), "num"], [(f) => num(f.price), "num"], [(f) => f.ts], [(f) => f.kind]],
    "fill-row", (f) => f.exec_id);
  renderLimits(s.limits || {});
  const pnl = s.pnl || {};
  problem("pnl-problem", pnl.problem);
  const cards = (pnl.rows || []).map(pnlCard);
  if (!cards.length) cards.push(el("p", { class: "muted" }, "no deployments in the journal"));
  document.getElementById("pnl-cards").replaceChildren(...cards);
  renderOutbox(s.outbox || {});
}

async function poll() {
  try {
    const resp = await fetch("api/state", { headers: { Accept: "application/json" } });
    if (resp.ok) render(await resp.json());
  } catch (err) {
    setText("live-mode", "polling (server unreachable)");
  }
}

function startPolling() {
  setText("live-mode", "polling");
  if (pollTimer === null) {
    pollTimer = setInterval(poll, POLL_MS);
    poll();
  }
}

function stopPolling() {
  if (pollTimer !== null) clearInterval(pollTimer);
  pollTimer = null;
}

function connect() {
  if (!window.EventSource) {
    startPolling();
    return;
  }
  const source = new EventSource("api/events");
  source.addEventListener("open", () => {
    stopPolling();
    setText("live-mode", "live");
  });
  source.addEventListener("state", (ev) => render(JSON.parse(ev.data)));
  source.addEventListener("heartbeat", (ev) => setText("generated-at", JSON.parse(ev.data).generated_at));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      startPolling();
      setTimeout(connect, POLL_MS);
      return;
    }
    // the browser retries by itself (the server ends every stream after a while): poll only
    // if the stream is not back soon
    setTimeout(() => {
      if (source.readyState !== EventSource.OPEN) startPolling();
    }, RECONNECT_GRACE_MS);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  poll();
  connect();
});
