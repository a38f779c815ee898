// Gatekeeper approver page: vanilla JavaScript, no build step, no external assets.
// Everything shown comes from the API as JSON and is put on the page with textContent only
// (never parsed as HTML): principal names, reasons and resource names cannot become markup.
"use strict";
(function () {
  const KEY = "gatekeeper.approvals.token";
  const DECIDED_SHOWN = 20;
  const requests = new Map(); // id -> request JSON
  const grants = new Map(); // id -> grant JSON
  let stream = null; // AbortController of the open event stream
  let retry = 1000;
  const $ = (id) => document.getElementById(id);

  function token() { return sessionStorage.getItem(KEY); }

  function say(text) { $("status").textContent = text || ""; }

  async function api(method, path, body) {
    const headers = { "Authorization": "Bearer " + token(), "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                  cache: "no-store", credentials: "omit" });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.status === 401) { signOut("Your token was refused or has expired: sign in again."); }
    if (!r.ok) {
      const reason = data && (data.reason || data.error) ? (data.reason || data.error) : "HTTP " + r.status;
      throw new Error(reason);
    }
    return data;
  }

  // -- rendering (textContent only) -------------------------------------------------------

  function text(el, value) { el.textContent = value === null || value === undefined ? "" : String(value); return el; }
  function cell(row, value, cls) { const td = row.insertCell(); text(td, value); if (cls) td.className = cls; return td; }
  function who(p) {
    if (!p) return "";
    let s = p.sub;
    if (p.groups && p.groups.length) s += " (" + p.groups.join(", ") + ")";
    return s;
  }
  function resource(r) { return r ? r.type + " " + r.name : ""; }
  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }
  function timeEl(iso) {
    const t = document.createElement("time");
    if (iso) t.dateTime = iso;
    return text(t, when(iso));
  }
  function deciders(req) {
    return (req.votes || []).map((v) => v.sub + " (" + v.verdict + ")").join(", ");
  }
  function lastReason(req) {
    const vs = req.votes || [];
    return vs.length ? vs[vs.length - 1].reason : (req.status === "expired" ? "no decision in time" : "");
  }
  function details(req) {
    const c = req.client || {};
    const parts = [];
    if (c.id) parts.push("client " + c.id);
    if (c.address) parts.push("from " + c.address);
    for (const [k, v] of Object.entries(req.summary || {})) parts.push(k + " " + (Array.isArray(v) ? v.join(",") : v));
    return parts.join("; ");
  }

  function renderPending() {
    const list = $("pending");
    const pending = [...requests.values()].filter((r) => r.status === "pending")
      .sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
    const existing = new Map([...list.children].map((li) => [li.dataset.id, li]));
    for (const [id, li] of existing) {
      if (!pending.some((r) => r.id === id)) li.remove();
    }
    for (const req of pending) {
      let li = existing.get(req.id);
      if (!li) {
        li = $("request-card").content.firstElementChild.cloneNode(true);
        li.dataset.id = req.id;
        li.classList.add("new");
        li.querySelector("form").addEventListener("submit", (ev) => decide(ev, req.id));
      }
      fillCard(li, req);
      list.appendChild(li); // keeps the order; a focused input keeps focus (same node)
    }
    text($("pending-count"), pending.length ? "(" + pending.length + ")" : "");
    $("pending-empty").hidden = pending.length > 0;
  }

  function fillCard(li, req) {
    const q = (sel) => li.querySelector(sel);
    text(q(".op"), req.operation);
    text(q(".resource"), resource(req.resource));
    text(q(".requester"), who(req.requester));
    text(q(".why"), req.reason);
    text(q(".details"), details(req));
    q(".when").replaceChildren(timeEl(req.created_at));
    q(".until").replaceChildren(timeEl(req.expires_at));
    let approvers = (req.approvers || []).join(", ");
    if (req.approvals_required > 1) {
      approvers += " — " + req.approvals_required + " different approvers needed, " + (req.votes || []).length + " so far";
    }
    text(q(".approvers"), approvers);
    text(q(".id"), req.id);
    const viewer = req.viewer || {};
    text(q(".note"), viewer.may_decide ? "" : viewer.why_not || "You cannot decide this request.");
    const form = q("form");
    form.hidden = !viewer.may_decide;
    form.setAttribute("aria-label", "Decide request " + req.id);
  }

  async function decide(ev, id) {
    ev.preventDefault();
    const form = ev.target;
    const action = ev.submitter ? ev.submitter.value : "approve";
    const reason = form.elements.reason.value.trim();
    const err = form.querySelector(".error");
    text(err, "");
    if (!reason) { text(err, "Give a reason."); form.elements.reason.focus(); return; }
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    try {
      const updated = await api("POST", "/api/v1/requests/" + encodeURIComponent(id) + "/" + action, { reason });
      upsertRequest(updated);
      say((action === "approve" ? "Approved " : "Denied ") + id);
    } catch (e) {
      text(err, e.message);
    } finally {
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
  }

  function renderDecided() {
    const decided = [...requests.values()].filter((r) => r.status !== "pending")
      .sort((a, b) => ((a.decided_at || a.expires_at) > (b.decided_at || b.expires_at) ? -1 : 1))
      .slice(0, DECIDED_SHOWN);
    const body = $("decided");
    body.replaceChildren();
    for (const r of decided) {
      const row = body.insertRow();
      row.dataset.id = r.id;
      cell(row, r.status, "status-" + r.status);
      cell(row, r.operation + " on " + resource(r.resource));
      cell(row, who(r.requester));
      cell(row, deciders(r));
      cell(row, lastReason(r));
      row.insertCell().appendChild(timeEl(r.decided_at || r.expires_at));
    }
    $("decided-table").hidden = decided.length === 0;
    $("decided-empty").hidden = decided.length > 0;
  }

  function renderGrants() {
    const now = Date.now();
    const live = [...grants.values()].filter((g) => g.live && new Date(g.expires_at).getTime() > now)
      .sort((a, b) => (a.expires_at < b.expires_at ? -1 : 1));
    const body = $("grants");
    body.replaceChildren();
    for (const g of live) {
      const row = body.insertRow();
      row.dataset.id = g.id;
      cell(row, who(g.principal));
      cell(row, g.operation);
      cell(row, resource(g.resource));
      cell(row, (g.approved_by || []).join(", "));
      row.insertCell().appendChild(timeEl(g.expires_at));
      const td = row.insertCell();
      if (g.viewer && g.viewer.may_revoke) td.appendChild(revokeForm(g));
    }
    $("grants-table").hidden = live.length === 0;
    $("grants-empty").hidden = live.length > 0;
  }

  function revokeForm(g) {
    const form = document.createElement("form");
    form.className = "revoke";
    form.setAttribute("aria-label", "Revoke grant " + g.id);
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.name = "reason"; input.required = true; input.maxLength = 1000; input.autocomplete = "off";
    label.append("Reason ", input);
    const button = text(document.createElement("button"), "Revoke");
    button.type = "submit";
    const err = document.createElement("span");
    err.className = "error"; err.setAttribute("role", "alert");
    form.append(label, " ", button, " ", err);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const reason = input.value.trim();
      if (!reason) { text(err, "Give a reason."); return; }
      button.disabled = true;
      try {
        upsertGrant(await api("POST", "/api/v1/grants/" + encodeURIComponent(g.id) + "/revoke", { reason }));
        say("Revoked grant " + g.id);
      } catch (e) { text(err, e.message); button.disabled = false; }
    });
    return form;
  }

  // Never let an older copy (from a list fetched while events arrived) undo a decision seen.
  function upsertRequest(r) {
    const old = requests.get(r.id);
    if (old && old.status !== "pending" && r.status === "pending") return;
    requests.set(r.id, r);
    renderPending(); renderDecided();
  }
  function upsertGrant(g) {
    const old = grants.get(g.id);
    if (old && !old.live && g.live) return;
    grants.set(g.id, g);
    renderGrants();
  }

  // -- live updates: server-sent events read with fetch (so the token goes in a header) ----

  async function listen() {
    if (stream) stream.abort();
    const ctl = new AbortController();
    stream = ctl;
    try {
      const r = await fetch("/api/v1/events", { headers: { "Authorization": "Bearer " + token(), "Accept": "text/event-stream" },
                                                signal: ctl.signal, cache: "no-store", credentials: "omit" });
      if (r.status === 401) { signOut("Your token was refused or has expired: sign in again."); return; }
      if (!r.ok) throw new Error("events: HTTP " + r.status);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          await onEvent(block);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
      say("Live updates interrupted (" + e.message + "); reconnecting…");
    }
    if (stream === ctl && token()) {
      setTimeout(() => { if (stream === ctl && token()) listen(); }, retry);
      retry = Math.min(retry * 2, 30000);
    }
  }

  async function onEvent(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    if (type === "ready") { retry = 1000; say(""); await refresh(); return; }
    if (type === "expired") { signOut("Your token has expired: sign in again."); return; }
    if (!data.length) return;
    const obj = JSON.parse(data.join("\n"));
    if (type === "request") upsertRequest(obj);
    else if (type === "grant") upsertGrant(obj);
  }

  async function refresh() {
    const [reqs, gs] = await Promise.all([api("GET", "/api/v1/requests"), api("GET", "/api/v1/grants?live=true")]);
    for (const r of reqs.requests) upsertRequest(r);
    for (const g of gs.grants) upsertGrant(g);
    renderPending(); renderDecided(); renderGrants();
    showLinked();
  }

  // page_url?request=apr_… (the link in notifications and client errors): bring that one forward.
  let linked = new URLSearchParams(location.search).get("request");
  function showLinked() {
    if (!linked) return;
    const el = [...document.querySelectorAll("#pending li.card, #decided tr")].find((e) => e.dataset.id === linked);
    if (!el) { say("Request " + linked + " is not one you may see, or it is no longer listed."); linked = null; return; }
    el.classList.add("linked");
    el.scrollIntoView({ block: "center" });
    const input = el.querySelector("input[name=reason]");
    if (input && !input.closest("form").hidden) input.focus();
    linked = null;
  }

  // -- signing in and out --------------------------------------------------------------------

  async function start() {
    let me;
    try {
      me = await api("GET", "/api/v1/whoami");
    } catch (e) {
      if (token()) { $("signin-error").textContent = e.message; }
      return;
    }
    text($("who-name"), "Signed in as " + who(me.principal));
    $("who").hidden = false;
    $("signin-section").hidden = true;
    $("app").hidden = false;
    document.body.dataset.state = "signed-in";
    renderPending(); renderDecided(); renderGrants();
    listen();
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    if (stream) { stream.abort(); stream = null; }
    requests.clear(); grants.clear();
    $("app").hidden = true;
    $("who").hidden = true;
    $("signin-section").hidden = false;
    document.body.dataset.state = "signed-out";
    text($("signin-error"), message || "");
    $("token").focus();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token").value.trim().replace(/^Bearer\s+/i, "");
      $("token").value = "";
      if (!t) return;
      sessionStorage.setItem(KEY, t);
      text($("signin-error"), "");
      start();
    });
    $("signout").addEventListener("click", () => signOut("Signed out."));
    setInterval(renderGrants, 30000); // expired grants leave the table
    if (token()) start(); else document.body.dataset.state = "signed-out";
  });
})();
