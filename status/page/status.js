// The status page's script (status/status_page.h has the API). Everything from the server is data:
// it goes into the page as text, never as markup.
"use strict";

const COLORS = ["#3d7bd9", "#d9643d", "#2f9e5b", "#9b4dca", "#c9a227", "#1aa3b3", "#d14d8b", "#6b7a8f"];
const CHARTS = ["lag_events", "applied_per_s", "lag_seconds"];
const SVG = "http://www.w3.org/2000/svg";
let page = { token: null, retry: { enabled: false, why_not: "" }, interval: 2, quarantined: -1, selected: null };

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function utc(ms) {
  if (!ms) return "-";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function ago(ms, now) {
  if (!ms) return "never";
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 90) return s.toFixed(0) + " s ago";
  if (s < 5400) return (s / 60).toFixed(0) + " min ago";
  return (s / 3600).toFixed(1) + " h ago";
}

function number(v, digits) {
  if (v === null || v === undefined) return "-";
  return digits === undefined ? Number(v).toLocaleString("en-US") : Number(v).toFixed(digits);
}

async function getJson(url, options) {
  const response = await fetch(url, Object.assign({ cache: "no-store" }, options || {}));
  let body;
  try { body = await response.json(); } catch (e) { body = { error: response.status + " " + response.statusText }; }
  return { ok: response.ok, status: response.status, body: body };
}

function colorOf(topics, topic) { return COLORS[topics.indexOf(topic) % COLORS.length]; }

function cell(row, text, cls, field) {
  const td = el("td", text, cls);
  if (field) td.dataset.field = field;
  row.appendChild(td);
  return td;
}

function renderStatus(data) {
  const error = $("error");
  error.hidden = !data.error;
  if (data.error) error.textContent = "Cannot read the pipeline's status (since " + utc(data.error.at_ms) + "): " + data.error.message;
  page.token = data.token;
  page.retry = data.retry;
  page.interval = Math.max(1, data.interval_s);
  $("history-span").textContent = "(the last " + Math.round(data.history_s / 60) + " minutes, a sample every " + data.interval_s + " s)";
  const st = data.status;
  if (!st) { $("summary").textContent = "waiting for the first sample..."; return; }
  $("summary").textContent = "topic prefix " + st.topic_prefix + " \u00b7 apply group " + st.group +
    (st.database ? " \u00b7 MySQL database " + st.database : " \u00b7 apply not reported (no --mysql-database)") +
    " \u00b7 sampled " + utc(st.at_ms);
  $("quarantine-group").textContent = "(group " + st.group + ")";

  const topics = st.collections.map(c => c.topic).sort();
  const body = $("collections").querySelector("tbody");
  body.replaceChildren();
  let quarantined = 0;
  for (const c of st.collections) {
    const tr = el("tr");
    tr.dataset.topic = c.topic;
    const name = cell(tr, "", null, "collection");
    const swatch = el("i");
    swatch.className = "swatch";
    swatch.style.background = colorOf(topics, c.topic);
    name.append(swatch, c.collection || "(unknown)");
    cell(tr, c.topic, null, "topic");
    cell(tr, c.tables.join(", ") || "-", null, "tables");
    const snap = cell(tr, "", null, "snapshot");
    if (c.snapshot) {
      const s = c.snapshot;
      const bar = el("span", null, "bar");
      const fill = el("span");
      const share = s.documents > 0 ? Math.min(1, s.copied / s.documents) : (s.complete ? 1 : 0);
      fill.style.width = (share * 100).toFixed(1) + "%";
      bar.appendChild(fill);
      snap.appendChild(bar);
      snap.append((s.complete ? "done: " : "copying: ") + number(s.copied) + " of " + number(s.documents) +
                  " documents, " + s.chunks_done + "/" + s.chunks + " chunks");
    } else {
      snap.textContent = "-";
    }
    cell(tr, number(c.end_offset), "num", "end_offset");
    cell(tr, st.database ? number(c.applied_events) : "-", "num", "applied_events");
    cell(tr, st.database ? number(c.lag_events) : "-", "num" + (c.lag_events > 0 ? " bad" : " ok"), "lag_events");
    cell(tr, st.database ? number(c.lag_seconds, 1) : "-", "num" + (c.lag_seconds > 0 ? " bad" : ""), "lag_seconds");
    cell(tr, number(c.applied_per_s, 1), "num", "applied_per_s");
    cell(tr, c.last_captured_ms ? ago(c.last_captured_ms, st.at_ms) : "-", null, "last_captured");
    cell(tr, c.last_applied_ms ? ago(c.last_applied_ms, st.at_ms) : "-", null, "last_applied");
    cell(tr, number(c.quarantined), "num" + (c.quarantined > 0 ? " bad" : ""), "quarantined");
    quarantined += c.quarantined;
    body.appendChild(tr);
  }
  $("no-collections").hidden = st.collections.length > 0;

  const caps = $("captures").querySelector("tbody");
  caps.replaceChildren();
  for (const c of st.captures) {
    const tr = el("tr");
    tr.dataset.capture = c.name;
    cell(tr, c.name, null, "name");
    cell(tr, c.scope, null, "scope");
    cell(tr, c.snapshot_done ? "done" : "copying", c.snapshot_done ? "ok" : null, "snapshot_done");
    cell(tr, c.last_event_ms ? utc(c.last_event_ms) : "-", null, "last_event");
    cell(tr, utc(c.checkpoint_ms) + " (" + ago(c.checkpoint_ms, st.at_ms) + ")", null, "checkpoint");
    caps.appendChild(tr);
  }
  return quarantined;
}

// One line chart of `field` per collection, by hand in SVG: time on x (the history's span), the
// field's range on y from 0.
function drawChart(history, field, topics) {
  const box = $("chart-" + field);
  const W = 400, H = 180, L = 46, R = 8, T = 8, B = 22;
  box.setAttribute("viewBox", "0 0 " + W + " " + H);
  box.replaceChildren();
  const t = history.at_ms;
  let max = 0;
  for (const topic of topics) {
    for (const v of history.collections[topic][field]) if (v !== null && v > max) max = v;
  }
  max = max > 0 ? niceCeil(max) : 1;
  const t0 = t.length ? t[0] : 0, t1 = t.length ? Math.max(t[t.length - 1], t0 + 1) : 1;
  const x = ms => L + (ms - t0) / (t1 - t0) * (W - L - R);
  const y = v => T + (1 - v / max) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4;
    box.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: i ? "grid" : "axis" }));
    const label = svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" });
    label.textContent = v >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString();
    box.appendChild(label);
  }
  box.appendChild(svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));
  if (t.length) {
    for (const [ms, anchor] of [[t0, "start"], [t1, "end"]]) {
      const label = svg("text", { x: x(ms), y: H - 6, "text-anchor": anchor });
      label.textContent = new Date(ms).toISOString().slice(11, 19);
      box.appendChild(label);
    }
  }
  for (const topic of topics) {
    const values = history.collections[topic][field];
    let d = "", pen = "M";
    values.forEach((v, i) => {
      if (v === null) { pen = "M"; return; }
      d += pen + x(t[i]).toFixed(1) + " " + y(v).toFixed(1) + " ";
      pen = "L";
    });
    const last = [...values].reverse().find(v => v !== null);
    const path = svg("path", { d: d.trim(), class: "line", stroke: colorOf(topics, topic) });
    path.dataset.topic = topic;
    path.dataset.last = last === undefined ? "" : String(last);
    const known = values.filter(v => v !== null);
    path.dataset.points = String(known.length);
    path.dataset.max = known.length ? String(Math.max(...known)) : "";
    box.appendChild(path);
  }
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function renderHistory(history) {
  const topics = Object.keys(history.collections).sort();
  const legend = $("legend");
  legend.replaceChildren();
  for (const topic of topics) {
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = colorOf(topics, topic);
    item.appendChild(swatch);
    item.append(history.collections[topic].collection || topic);
    legend.appendChild(item);
  }
  for (const field of CHARTS) drawChart(history, field, topics);
}

function about(r) {
  if (r.undecodable) return "(undecodable)";
  return r.event;
}

async function refreshQuarantine() {
  const done = $("show-done").checked;
  const answer = await getJson("/api/quarantine" + (done ? "?done=1" : ""));
  const note = $("quarantine-note");
  const body = $("quarantine").querySelector("tbody");
  if (!answer.ok) { note.hidden = false; note.textContent = answer.body.error; return; }
  note.hidden = !answer.body.note;
  note.textContent = answer.body.note || "";
  body.replaceChildren();
  for (const r of answer.body.rows) {
    const tr = el("tr");
    tr.dataset.id = r.id;
    if (r.id === page.selected) tr.className = "selected";
    cell(tr, r.id, "num", "id");
    cell(tr, r.at + " UTC", null, "at");
    cell(tr, about(r), null, "event");
    cell(tr, r.namespace || "-", null, "namespace");
    cell(tr, r.document_key || "-", null, "document_key");
    cell(tr, r.error.length > 160 ? r.error.slice(0, 160) + "..." : r.error, "reason", "error");
    cell(tr, r.replayed_at ? "done " + r.replayed_at + ": " + r.replay : "pending", null, "state");
    tr.addEventListener("click", () => showEvent(r.id));
    body.appendChild(tr);
  }
  if (!answer.body.rows.length && !answer.body.note) {
    note.hidden = false;
    note.textContent = done ? "Nothing was ever quarantined." : "No quarantined event is pending.";
  }
}

function pretty(text) {
  if (text === null || text === undefined) return "(none)";
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
}

async function showEvent(id) {
  page.selected = id;
  for (const tr of $("quarantine").querySelectorAll("tbody tr")) tr.className = Number(tr.dataset.id) === id ? "selected" : "";
  const answer = await getJson("/api/quarantine/" + id);
  if (page.selected !== id) return;  // another event was clicked meanwhile
  const detail = $("q-detail");
  detail.hidden = false;
  $("q-outcome").textContent = "";
  $("q-outcome").className = "";
  if (!answer.ok) { $("q-error").textContent = answer.body.error; return; }
  const r = answer.body.row;
  detail.dataset.id = r.id;
  $("q-id").textContent = "#" + r.id;
  $("q-where").textContent = r.topic + "[" + r.partition + "]@" + r.offset + ", quarantined " + r.at + " UTC" +
    (r.namespace ? ", " + r.event + " of " + r.namespace + (r.document_key ? " " + r.document_key : "") : "");
  $("q-error").textContent = r.error;
  $("q-state").textContent = r.replayed_at ? "done " + r.replayed_at + " UTC: " + r.replay : "pending";
  $("q-document").textContent = answer.body.document !== null ? pretty(answer.body.document)
    : (r.undecodable ? "(the event cannot be decoded: " + r.undecodable + ")" : "(this event carries no document: " + (r.event || "?") + ")");
  $("q-raw").textContent = "key: " + (answer.body.key === null ? "(none)" : answer.body.key) + "\n\nvalue:\n" + pretty(answer.body.value);
  const button = $("q-retry");
  const pending = !r.replayed_at;
  button.disabled = !page.retry.enabled || !pending;
  $("q-retry-why").textContent = !page.retry.enabled ? page.retry.why_not : (pending ? "" : "dealt with already");
}

async function retry() {
  const id = page.selected;
  if (id === null) return;
  const button = $("q-retry");
  button.disabled = true;
  const out = $("q-outcome");
  out.className = "";
  out.textContent = "retrying...";
  // The token header makes this a request no other site can send (status_page.h).
  const answer = await getJson("/api/quarantine/" + id + "/retry",
                               { method: "POST", headers: { "X-M2M-Token": page.token || "" } });
  let cls, shown;
  if (!answer.ok) {
    cls = "refused";
    shown = "Refused: " + answer.body.error;
  } else {
    cls = answer.body.outcome;
    const what = { written: "Retried: ", deleted: "Retried: ", not_replayed: "Not retried: ", failed: "Failed, still pending: " };
    shown = what[answer.body.outcome] + answer.body.detail;
  }
  // The outcome shows once the list and the event show the state after the retry.
  await refreshQuarantine();
  if (page.selected !== id) return;
  await showEvent(id);
  if (page.selected !== id) return;
  out.className = cls;
  out.textContent = shown;
}

async function refresh() {
  try {
    const [status, history] = await Promise.all([getJson("/api/status"), getJson("/api/history")]);
    if (status.ok) {
      const quarantined = renderStatus(status.body);
      if (quarantined !== undefined && quarantined !== page.quarantined) {
        page.quarantined = quarantined;
        await refreshQuarantine();
      }
    }
    if (history.ok) renderHistory(history.body);
    document.body.dataset.loaded = "yes";
  } catch (e) {
    const error = $("error");
    error.hidden = false;
    error.textContent = "The page's server does not answer: " + e;
  }
  setTimeout(refresh, page.interval * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("show-done").addEventListener("change", refreshQuarantine);
  $("q-retry").addEventListener("click", retry);
  refresh();
});
