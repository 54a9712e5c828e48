// Lakitu dashboard: plain JavaScript over the control API. Every value from the node (post
// bodies come from other people) is written with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "lakitu-token";
const REFRESH_MS = 2000;
const FEED_LIMIT = 50;

let token = null;
let feedIds = new Set();
let refreshTimer = null;
let selfId = null;

const $ = (id) => document.getElementById(id);

// The same characters as `lakitu::text::shown` (keep the two in step): controls other than
// newline and tab, DEL, C1 and the bidi overrides and isolates, shown as `\u{…}` so another
// person's text cannot reorder what surrounds it.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const shown = (v) => String(v).replace(UNSAFE, (c) => "\\u{" + c.charCodeAt(0).toString(16) + "}");

function el(tag, opts = {}, children = []) {
  const e = document.createElement(tag);
  if (opts.text !== undefined) e.textContent = shown(opts.text);
  if (opts.cls) e.className = opts.cls;
  if (opts.title) e.title = opts.title;
  for (const c of children) e.appendChild(c);
  return e;
}

// The token arrives once in the fragment (never sent to a server), then lives in this
// origin's sessionStorage; the address bar is cleaned so it is not copied around.
function takeToken() {
  const m = /(?:^|[#&])token=([0-9A-Za-z_-]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

class Unauthorized extends Error {}

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token }, opts.headers || {});
  const resp = await fetch(path, Object.assign({}, opts, { headers, cache: "no-store" }));
  if (resp.status === 401) throw new Unauthorized("token refused");
  if (!resp.ok) {
    let msg = resp.status + " " + resp.statusText;
    try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return resp.json();
}

function showLogin(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  if (refreshTimer) clearInterval(refreshTimer);
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setConn("signed out", "conn-retry");
}

function setConn(text, cls) {
  const c = $("conn");
  c.textContent = shown(text);
  c.className = "badge " + cls;
}

function ago(ms) {
  if (ms === null || ms === undefined) return "never";
  if (ms < 1000) return "just now";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function duration(secs) {
  if (secs < 60) return secs + " s";
  if (secs < 3600) return Math.floor(secs / 60) + " min";
  if (secs < 86400) return Math.floor(secs / 3600) + " h " + Math.floor((secs % 3600) / 60) + " min";
  return Math.floor(secs / 86400) + " d";
}

function bytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}

function short(id) {
  return id.length > 16 ? id.slice(0, 16) + "…" : id;
}

function transportOf(addresses) {
  const a = addresses[0] || "";
  const i = a.indexOf(":");
  return i > 0 ? a.slice(0, i) : "–";
}

// The carrier a peer is reached on, or "via <bridge>" when it shares none with this relay.
function reachedBy(p) {
  if (!p.reached) return transportOf(p.addresses);
  if (p.reached.startsWith("via ") || p.reached === "unreachable") return p.reached;
  return transportOf([p.reached]);
}

function renderStatus(s) {
  selfId = s.id;
  $("node-id").textContent = s.id;
  $("node-name").textContent = shown(s.name || "");
  $("stat-posts").textContent = s.posts;
  $("stat-peers").textContent = s.peers_alive + " / " + s.peers;
  $("stat-uptime").textContent = duration(s.uptime_secs);
  $("stat-following").textContent = shown(following(s.following));
  $("stat-history").textContent = shown(syncLine(s.history));
}

// The running history sync, or how the last one ended (`lakitu sync` shows the detail).
function syncLine(h) {
  if (!h || !h.length) return "–";
  const scope = (x) => (x.scope.startsWith("#") || x.scope === "everything") ? x.scope : x.scope.slice(0, 10);
  const run = h.find((x) => x.state === "running" || x.state === "queued");
  if (run) {
    return "fetching " + scope(run) + ": " + (run.fetched + run.held) + " of ≤ " + run.max;
  }
  const last = h[0];
  if (last.state === "done") return scope(last) + ": " + last.fetched + " fetched";
  return scope(last) + ": " + last.state.replace("_", " ");
}

// What the node follows, in one line (`lakitu following` has the detail).
function following(f) {
  if (!f) return "–";
  const parts = (f.topics || []).map((t) => "#" + t)
    .concat((f.authors || []).map((a) => a.name || a.id.slice(0, 10)));
  if (f.everything) return parts.length ? "all posts, and " + parts.join(" ") : "all posts";
  return parts.length ? parts.join(" ") : "–";
}

function renderPeers(peers) {
  const body = $("peers").tBodies[0];
  const rows = peers
    .slice()
    .sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id))
    .map((p) => {
      const tr = el("tr", { cls: "peer" }, [
        el("td", {}, [el("code", { text: p.name ? p.name + " (" + short(p.id) + ")" : short(p.id), title: p.id })]),
        el("td", { text: p.state, cls: "state-" + p.state }),
        el("td", { text: reachedBy(p), title: p.addresses.join("\n") }),
        el("td", { text: ago(p.last_heard_ms_ago) }),
        el("td", { text: p.reputation.toFixed(0) }),
        el("td", { text: p.rtt_ms === null ? "–" : p.rtt_ms.toFixed(1) + " ms" }),
      ]);
      tr.dataset.id = p.id;
      return tr;
    });
  body.replaceChildren(...rows);
  $("peers-empty").hidden = peers.length > 0;
}

// "used / limit (left)" of a carrier's sending budget, flagged when low or spent.
function budgetCell(t) {
  const b = t.budget;
  if (!b) return { text: "–" };
  const unit = t.scheme === "mailto" ? "mails" : "stanzas";
  let text = b.limit === 0
    ? b.used + " " + unit + " (no limit)"
    : b.used + " / " + b.limit + " " + unit + " (" + Math.max(0, b.limit - b.used) + " left)";
  if (b.bytes_limit) text += ", " + bytes(b.bytes_used) + " / " + bytes(b.bytes_limit);
  if (b.spent) return { text: text + " — spent, " + b.held + " waiting", cls: "health-failing" };
  if (b.low) return { text: text + " — low: posts first", cls: "health-idle" };
  return { text };
}

function renderOverview(o) {
  $("stat-received").textContent = o.posts_received;
  const rows = o.transports.map((t) =>
    el("tr", { cls: "transport" }, [
      el("td", { text: t.scheme }),
      el("td", {}, [el("code", { text: t.address })]),
      el("td", { text: t.health, cls: "health-" + t.health }),
      el("td", { text: t.frames_received + " / " + t.frames_sent }),
      el("td", { text: bytes(t.bytes_received) + " / " + bytes(t.bytes_sent) }),
      el("td", { text: t.send_failures }),
      el("td", { text: ago(t.last_received_ms_ago) }),
      el("td", budgetCell(t)),
    ])
  );
  $("transports").tBodies[0].replaceChildren(...rows);
  const w = o.world;
  const facts = [
    ["Nodes reporting", w.nodes],
    ["Nodes alive", w.alive],
    ["Posts stored (all nodes)", w.posts_total],
    ["Posts per node", w.posts_min + " – " + w.posts_max],
    ["Mean peers per node", w.peers_mean.toFixed(1)],
    ["Frames per period (all nodes)", w.load_total],
    ["Longest uptime", duration(w.uptime_max_secs)],
    ["Posts published here", o.posts_published],
    ["Duplicates received", o.duplicates],
    ["Invalid posts refused", o.posts_invalid],
  ];
  const items = [];
  for (const [k, v] of facts) items.push(el("dt", { text: k }), el("dd", { text: v }));
  $("world").replaceChildren(...items);
}

function postItem(p, fresh) {
  const when = new Date(p.timestamp);
  const li = el("li", { cls: fresh ? "post fresh" : "post" }, [
    el("div", { cls: "meta" }, [
      el("span", { text: p.author === selfId ? "this node" : short(p.author), title: p.author }),
      el("span", { text: " · " + when.toLocaleString() }),
    ]),
    el("div", { cls: "topics" }, p.topics.map((t) => el("span", { cls: "topic", text: "#" + t }))),
    el("div", { cls: "body", text: p.body }),
  ]);
  li.dataset.id = p.id;
  if (fresh) setTimeout(() => li.classList.remove("fresh"), 50);
  return li;
}

// Newest first; a post already shown (from the form's answer and then the stream) is skipped.
function addPost(p, fresh) {
  if (feedIds.has(p.id)) return;
  feedIds.add(p.id);
  const feed = $("feed");
  const item = postItem(p, fresh);
  const later = Array.from(feed.children).find((c) => Number(c.dataset.ts) < p.timestamp);
  item.dataset.ts = p.timestamp;
  feed.insertBefore(item, later || null);
  while (feed.children.length > 200) {
    feedIds.delete(feed.lastChild.dataset.id);
    feed.removeChild(feed.lastChild);
  }
}

async function loadFeed() {
  const posts = await api("/v1/posts?limit=" + FEED_LIMIT);
  for (const p of posts) addPost(p, false);
}

// Server-sent events through fetch (EventSource cannot send the bearer header).
async function follow() {
  for (;;) {
    try {
      const resp = await fetch("/v1/posts/follow", { headers: { Authorization: "Bearer " + token } });
      if (resp.status === 401) return showLogin("The token was refused.");
      if (!resp.ok || !resp.body) throw new Error("follow: " + resp.status);
      setConn("live", "conn-live");
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const event = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let kind = "message";
          let data = "";
          for (const line of event.split("\n")) {
            if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trimStart();
          }
          if (kind === "post") addPost(JSON.parse(data), true);
          if (kind === "lagged") loadFeed().catch(() => {});
        }
      }
    } catch (e) {
      console.warn("feed stream:", e);
    }
    if (!token) return;
    setConn("reconnecting…", "conn-retry");
    await new Promise((r) => setTimeout(r, 2000));
    loadFeed().catch(() => {});
  }
}

async function refresh() {
  try {
    const [status, peers, overview] = await Promise.all([
      api("/v1/status"),
      api("/v1/peers"),
      api("/v1/overview"),
    ]);
    renderStatus(status);
    renderPeers(peers);
    renderOverview(overview);
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("The token was refused.");
    setConn("node unreachable", "conn-retry");
  }
}

async function submitPost(ev) {
  ev.preventDefault();
  const body = $("post-body").value.trim();
  if (!body) return;
  const topics = $("post-topics").value.split(/[\s,]+/).map((t) => t.replace(/^#/, "")).filter(Boolean);
  const button = $("post-submit");
  button.disabled = true;
  $("post-status").textContent = "posting…";
  try {
    const post = await api("/v1/posts", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ topics, body }),
    });
    addPost(post, true);
    $("post-body").value = "";
    $("post-status").textContent = "posted " + post.id.slice(0, 12);
    refresh();
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("The token was refused.");
    $("post-status").textContent = "not posted: " + e.message;
  } finally {
    button.disabled = false;
  }
}

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  try {
    await refresh();
    await loadFeed();
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("The token was refused.");
  }
  if (!token) return;
  refreshTimer = setInterval(refresh, REFRESH_MS);
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  $("post-form").addEventListener("submit", submitPost);
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("login-token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    token = t;
    $("login-token").value = "";
    start();
  });
  token = takeToken();
  if (token) start();
  else showLogin("");
});
