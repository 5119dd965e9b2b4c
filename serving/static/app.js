// stylestream live view: one EventSource on /api/stream, redraws on each message.
"use strict";
const $ = (id) => document.getElementById(id);
let source = null;
let current = null;

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}

function image(url, alt) {
  const img = document.createElement("img");
  if (url) img.src = url;
  img.alt = alt || "";
  img.loading = "lazy";
  return img;
}

function fmtMs(v) { return v === null || v === undefined ? "–" : `${Math.round(v)} ms`; }

function when(t) {
  const n = Number(t);
  const d = Number.isFinite(n) ? new Date(n * 1000) : new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleTimeString();
}

function showStats(stats, users) {
  if (!stats) return;
  $("lists-rate").textContent = stats.lists_per_s.toFixed(1);
  $("events-rate").textContent = stats.events_per_s.toFixed(1);
  $("fresh-p50").textContent = fmtMs(stats.freshness_p50_ms);
  $("fresh-p99").textContent = fmtMs(stats.freshness_p99_ms);
  $("lists-total").textContent = stats.lists_total;
  $("shoppers").textContent = stats.shoppers;
  if (users) {
    const list = $("users");
    list.replaceChildren(...users.map((u) => { const o = document.createElement("option");
                                                o.value = u; return o; }));
  }
}

function showRec(rec) {
  const ol = $("top5");
  if (!rec || !rec.items) {
    ol.replaceChildren(text("li", "waiting for a list…", "empty"));
    $("rec-meta").textContent = "";
    return;
  }
  const age = rec.source_event_time ? ` · newest event ${when(rec.source_event_time)}` : "";
  $("rec-meta").textContent = `model ${rec.model_version} · generated ${when(rec.generated_at)}${age}`;
  if (!rec.items.length) {
    ol.replaceChildren(text("li", "an empty list: nothing to recommend yet", "empty"));
    return;
  }
  ol.replaceChildren(...rec.items.map((item, k) => {
    const li = document.createElement("li");
    li.dataset.itemId = item.item_id;
    li.className = "fresh";
    li.append(image(item.image_url, item.title), text("span", `#${k + 1}`, "rank"),
              text("div", item.title || item.item_id, "title"),
              text("div", `score ${Number(item.score).toFixed(3)}`, "score"));
    const reasons = document.createElement("ul");
    reasons.className = "reasons";
    (item.reasons || []).forEach((r) => reasons.append(text("li", r)));
    li.append(reasons);
    return li;
  }));
}

function eventRow(ev) {
  const tr = document.createElement("tr");
  tr.dataset.eventId = ev.event_id || "";
  const pic = document.createElement("td");
  pic.append(image(ev.image_url, ev.title));
  tr.append(text("td", when(ev.timestamp)), text("td", ev.behavior, `beh ${ev.behavior}`), pic,
            text("td", ev.title || ev.item_id));
  return tr;
}

function showEvents(events) {
  const body = $("events");
  body.replaceChildren(...(events.length ? events.map(eventRow)
                                         : [text("tr", "none yet", "empty")]));
}

function addEvent(ev) {
  const body = $("events");
  if (body.querySelector(".empty")) body.replaceChildren();
  body.prepend(eventRow(ev));
  while (body.children.length > 10) body.lastChild.remove();
}

function connect(user) {
  if (source) source.close();
  current = user || null;
  const params = new URLSearchParams(current ? { user: current } : {});
  history.replaceState(null, "", current ? `/?${params}` : "/");
  $("rec-user").textContent = current || "the newest shopper served";
  source = new EventSource(`/api/stream?${params}`);
  source.onopen = () => { $("live").textContent = "live"; $("live").className = "live on"; };
  source.onerror = () => { $("live").textContent = "reconnecting…"; $("live").className = "live"; };
  source.addEventListener("state", (m) => {
    const s = JSON.parse(m.data);
    if (s.user) { $("rec-user").textContent = s.user; document.body.dataset.user = s.user; }
    showRec(s.recommendation);
    showEvents(s.events || []);
    showStats(s.stats, s.users);
  });
  source.addEventListener("rec", (m) => showRec(JSON.parse(m.data)));
  source.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
  source.addEventListener("stats", (m) => { const s = JSON.parse(m.data);
                                            showStats(s.stats, s.users); });
}

$("pick").addEventListener("submit", (e) => { e.preventDefault(); connect($("user").value.trim()); });
$("newest").addEventListener("click", () => { $("user").value = ""; connect(null); });
const initial = new URLSearchParams(location.search).get("user");
$("user").value = initial || "";
connect(initial);
