// lab serve's pages: each draws the JSON of /api, live from its server-sent events. No
// framework and no build step; text goes in as text (textContent), never as HTML.
"use strict";

const page = document.body.dataset.page;
const labName = document.body.dataset.lab;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function replace(id, ...children) {
  const node = document.getElementById(id);
  if (node) node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function ago(unix) {
  if (!unix) return "never";
  const s = Math.max(0, Math.round(Date.now() / 1000 - unix));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return new Date(unix * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

// The answer to the last action (#banner) and how the lab or engine stands (#state) are apart,
// so that a live update never wipes an action's answer.
function banner(text, ok, id) {
  const b = document.getElementById(id || "banner");
  if (!text) { b.hidden = true; return; }
  b.textContent = text;
  b.className = "banner" + (ok ? " ok" : "");
  b.hidden = false;
}

function live(on, text) {
  const l = document.getElementById("live");
  l.textContent = text || (on ? "live" : "reconnecting…");
  l.className = "live " + (on ? "on" : "off");
}

// Follows a server-sent stream; the browser reconnects by itself after a drop.
// The last answer is drawn again every 20 s, so that "2 min ago" stays true between changes.
// The stream is closed when the page is left (a browser may keep a left page, and its stream,
// in its back-forward cache), so that the server stops polling a lab nobody looks at; and
// opened again if the page is shown again.
function follow(url, draw) {
  let source = null;
  let last = null;
  const redraw = () => {
    if (last === null) return;
    try { draw(last); } catch (e) { banner("The page could not draw an answer: " + e); }
  };
  const open = () => {
    source = new EventSource(url);
    source.onopen = () => live(true);
    source.onmessage = (m) => {
      live(true);
      try { last = JSON.parse(m.data); } catch (e) { banner("The page could not read an answer: " + e); return; }
      redraw();
    };
    source.onerror = () => live(false);
  };
  setInterval(redraw, 20000);
  window.addEventListener("pagehide", () => { if (source) source.close(); source = null; });
  window.addEventListener("pageshow", (e) => { if (e.persisted || !source) open(); });
  open();
}

// A POST as the page sends it (X-Lab marks it as the page's own); the answer's JSON, or its
// error shown (409: another command is changing the lab).
async function post(url) {
  let response;
  try {
    response = await fetch(url, { method: "POST", headers: { "X-Lab": "1" }, credentials: "same-origin" });
  } catch (e) {
    banner("lab serve did not answer (" + e + "); is it still running?");
    return null;
  }
  let body = {};
  try { body = await response.json(); } catch (e) { body = {}; }
  if (!response.ok) {
    const what = response.status === 409 ? "Busy: " : "Refused (" + response.status + "): ";
    banner(what + (body.error || (body.busy || []).map((b) => b.message).join("\n") || response.statusText));
    return null;
  }
  return body;
}

function pill(health) {
  const tone = { healthy: "good", "in the course": "change", degraded: "bad", stopped: "bad", gone: "bad", "engine lost": "bad" }[health] || "none";
  return el("span", { class: "pill " + tone, text: health });
}

function actionText(a) {
  if (!a) return null;
  if (a.running) return el("span", { class: "action running", text: a.message + " (since " + ago(a.started) + ")…" });
  return el("span", { class: "action " + (a.ok ? "good" : "bad"), text: a.what + ": " + a.message });
}

async function resetLab(name) {
  if (!confirm("Reset lab " + name + "? It goes back to the state it was created in; what was done in it is lost.")) return;
  banner(null);
  const a = await post("/api/labs/" + encodeURIComponent(name) + "/reset");
  if (a) banner("Reset of lab " + name + " started; its row shows how it goes.", true);
}

async function checkLab(name) {
  banner(null);
  const report = await post("/api/labs/" + encodeURIComponent(name) + "/check");
  if (report) {
    const done = report.steps.filter((s) => s.done).length;
    banner("lab check " + name + ": " + done + " of " + report.steps.length + " steps done" + (report.done ? " — every step is done." : "."), true);
  }
}

// The first three problems, and how many more: a row stays readable when a lab is down.
function problems(list) {
  if (!list.length) return null;
  const shown = list.slice(0, 3).map((p) => el("li", { text: p }));
  if (list.length > 3) shown.push(el("li", { class: "muted", text: "and " + (list.length - 3) + " more (see its page)" }));
  return el("ul", { class: "problems" }, shown);
}

function stepCell(step) {
  if (!step) return el("span", { class: "muted", text: "judging…" });
  if (!step.next) return el("span", {}, el("span", { class: "pill good", text: "✓ done" }), el("span", { class: "sub", text: step.done + "/" + step.total + " steps" }));
  return el("span", {},
    el("span", { class: "step-next", text: step.next }),
    el("span", { class: "sub", text: step.done + "/" + step.total + " done" + (step.command ? " · " + step.command.command : "") }));
}

// "4m 05s", "42s", as `lab exercise status` says it.
function span(seconds) {
  return seconds >= 60 ? Math.floor(seconds / 60) + "m " + String(seconds % 60).padStart(2, "0") + "s" : seconds + "s";
}

function exerciseCell(x) {
  if (!x) return el("span", { class: "muted", text: "none" });
  const state = x.solved
    ? el("span", { class: "pill good", text: "✓ solved in " + span(x.took ?? x.elapsed) })
    : el("span", { class: "pill change", text: "not solved · " + span(x.elapsed) });
  return el("span", {}, el("span", { class: "exercise-name", text: x.exercise }), state,
    el("span", { class: "sub", text: x.hints + "/3 hints" + (x.wrong.length ? " · " + x.wrong[0] : "") }));
}

function drillCell(d) {
  if (!d) return el("span", { class: "muted", text: "none" });
  const down = d.write_downtime == null ? "writes did not come back" : d.write_downtime.toFixed(2) + " s down";
  return el("span", {}, el("span", { text: d.scenario + ": " + down }),
    el("span", { class: "sub", text: d.lost + " lost · " + ago(d.at) }));
}

function drawClass(cls) {
  banner(cls.error ? "The Docker Engine: " + cls.error : null, false, "state");
  const rows = cls.labs.map((r) => el("tr", { "data-lab": r.lab },
    el("td", { class: "lab" }, el("a", { href: "/labs/" + encodeURIComponent(r.lab), text: r.lab }),
      r.link ? el("span", { class: "sub" }, el("a", { class: "trainee-link", href: r.link, text: "trainee's link" })) : null),
    el("td", {}, pill(r.health), problems(r.problems)),
    el("td", { class: "leader" }, r.leader ? el("span", {}, r.leader, el("span", { class: "sub", text: "timeline " + (r.timeline ?? "?") })) : el("span", { class: "muted", text: "none" })),
    el("td", { class: "num" }, r.replicas ? r.streaming + "/" + r.replicas + " streaming" : "—"),
    el("td", { class: "etcd" }, r.etcd ? el("span", {}, el("span", { class: r.etcd.quorum ? "" : "pill bad", text: r.etcd.up + "/" + r.etcd.members + " up" + (r.etcd.quorum ? "" : ", no quorum") }),
      el("span", { class: "sub", text: "leader " + (r.etcd.leader || "none") })) : "—"),
    el("td", { class: "haproxy" }, r.haproxy ?? "—"),
    el("td", { class: "step" }, stepCell(r.step)),
    el("td", { class: "exercise" }, exerciseCell(r.exercise)),
    el("td", {}, ago(r.last_reset)),
    el("td", {}, drillCell(r.last_drill)),
    el("td", { class: "actions" },
      el("button", { type: "button", class: "small danger", "data-action": "reset", disabled: !!(r.action && r.action.running), on: { click: () => resetLab(r.lab) } }, "Reset…"),
      el("button", { type: "button", class: "small", "data-action": "check", disabled: !!(r.action && r.action.running), on: { click: () => checkLab(r.lab) } }, "Check"),
      r.action ? el("span", { class: "sub" }, actionText(r.action)) : null)));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 11, class: "muted", text: "There is no lab on this Docker Engine yet: `lab create --count N` makes a class." })));
  replace("rows", rows);
  document.getElementById("class-note").textContent = cls.labs.length + (cls.labs.length === 1 ? " lab" : " labs");
}

function role(m) {
  if (!m) return el("span", { class: "muted", text: "no answer" });
  const tone = m.role === "primary" || m.role === "master" ? "good" : m.role === "replica" ? "none" : "change";
  return el("span", { class: "pill " + tone, text: m.role });
}

function drawLab(v) {
  const s = v.snapshot;
  replace("action", actionText(v.action) || "");
  for (const b of document.querySelectorAll("#reset-lab, #check-lab")) b.disabled = !!(v.action && v.action.running);
  if (!s) return;
  const presence = s.presence.state;
  if (presence === "gone") banner("Lab " + v.lab + " is gone: no container of it is left on the Docker Engine. This page waits for it to come back.", false, "state");
  else if (presence === "engine_lost") banner("The Docker Engine does not answer: " + s.presence.why + ". Trying again.", false, "state");
  else banner(null, false, "state");
  const leader = s.nodes.find((n) => n.running && n.member && (n.member.role === "primary" || n.member.role === "master"));
  const unseen = { gone: "gone", engine_lost: "the engine does not answer" }[presence];
  document.getElementById("title").textContent = "lab " + v.lab + (unseen ? " — " + unseen : leader ? " — leader " + leader.name : " — no leader");
  // Nothing is known of it now: say so rather than "no etcd".
  const nothing = () => el("span", { class: "muted", text: "cannot be seen now" });
  replace("nodes", s.nodes.length ? s.nodes.map((n) => el("tr", { "data-node": n.name },
    // The course's name, and the container's where it differs (pgha1, alice1).
    el("td", { class: "mono" }, n.name, n.container_name && n.container_name !== n.name ? el("div", { class: "small muted", text: n.container_name }) : null),
    el("td", {}, n.running ? (n.cut_off ? el("span", { class: "pill bad", text: "cut off" }) : n.container) : el("span", { class: "pill bad", text: n.container })),
    el("td", { class: "role" }, n.postgres ? role(n.member) : el("span", { class: "muted", text: n.runs || "—" })),
    el("td", {}, n.member ? n.member.state : "—"),
    el("td", { class: "num" }, n.member && n.member.timeline != null ? n.member.timeline : "—"),
    el("td", { class: "num" }, n.member && n.member.lag != null ? n.member.lag + " B" : "—"),
    el("td", { class: "mono" }, n.member && n.member.streams_from ? n.member.streams_from : "—")))
    : [el("tr", {}, el("td", { colspan: 7, class: "muted", text: presence === "here" ? "Asking the nodes…" : "The lab cannot be seen now." }))]);
  if (unseen) replace("etcd", nothing());
  else if (s.etcd) {
    const e = s.etcd, quorum = Math.floor(e.members.length / 2) + 1, has = e.up.length >= quorum;
    replace("etcd", el("div", {}, el("span", { class: "pill " + (has ? "good" : "bad"), text: has ? "quorum" : "no quorum" }), " " + e.up.length + " of " + e.members.length + " up (quorum " + quorum + ")"),
      el("div", { class: "small" }, "leader: ", e.leader || "none"),
      el("div", { class: "small muted", text: "members: " + e.members.map((m) => m + (e.up.includes(m) ? "" : " (down)")).join(", ") }));
  } else replace("etcd", el("span", { class: "muted", text: "no etcd in this lab" }));
  if (unseen) replace("haproxy", nothing());
  else if (s.haproxy) {
    const r = s.haproxy.routing;
    replace("haproxy", el("div", { class: "small muted", text: "on " + s.haproxy.node }),
      r ? [el("div", {}, "primary port → ", r.primary.length ? r.primary.join(", ") : "nothing"), el("div", {}, "replica port → ", r.replicas.length ? r.replicas.join(", ") : "nothing")]
        : el("div", { class: "pill bad", text: "not answering" }));
  } else replace("haproxy", el("span", { class: "muted", text: "no HAProxy in this lab" }));
  if (v.course) {
    const steps = v.course.report.steps, done = steps.filter((x) => x.done).length, first = steps.find((x) => !x.done);
    const next = steps.find((x) => x.next);
    replace("course", el("div", {}, done + " of " + steps.length + " steps done"),
      first ? el("div", {}, "next: ", el("strong", { text: first.step })) : el("div", { class: "pill good", text: "every step done" }),
      next ? el("div", { class: "small mono", text: "on " + next.next.on + (next.next.user ? " as " + next.next.user : "") + ": " + next.next.command }) : null,
      el("div", { class: "small muted", text: "judged " + ago(v.course.at) }));
  } else if (v.course_error) replace("course", el("span", { class: "pill bad", text: "cannot judge" }), el("div", { class: "small", text: v.course_error }));
  replace("last-reset", v.last_reset ? ago(v.last_reset.at) + " (took " + v.last_reset.took.toFixed(0) + " s)" : "never");
  if (v.events.length) replace("events", v.events.slice().reverse().map((e) => el("li", { class: e.tone }, el("span", { class: "at", text: e.at }), e.text)));
  drawDrill(v);
}

let drawnDrill = null;
function drawDrill(v) {
  const d = v.last_drill;
  // Drawn again when another drill came, or its "when" changed; the picture is kept.
  const key = d ? d.at + ago(d.at) : null;
  if (!d || drawnDrill === key) return;
  drawnDrill = key;
  const fig = (k, val) => el("span", {}, el("span", { class: "muted", text: k + " " }), el("strong", { text: val }));
  replace("drill", el("div", { class: "drill-figures" },
    fig("scenario", d.scenario + " (" + d.mode + ")"),
    fig("write downtime", d.write_downtime == null ? "did not come back" : d.write_downtime.toFixed(2) + " s"),
    fig("predicted", d.predicted_low.toFixed(0) + "–" + d.predicted_high.toFixed(0) + " s"),
    fig("acknowledged", d.acknowledged), fig("lost", d.lost),
    fig("new leader", d.new_leader || "stayed"), fig("when", ago(d.at))),
    el("div", { class: "small", text: d.verdict }),
    el("div", { class: "drill" }, el("img", { alt: "the drill's timeline", src: "/api/labs/" + encodeURIComponent(v.lab) + "/drill.svg?at=" + d.at })));
}

function drawTrainee(v) {
  const s = v.snapshot;
  if (s) {
    const leader = s.nodes.find((n) => n.running && n.member && (n.member.role === "primary" || n.member.role === "master"));
    const down = s.nodes.filter((n) => !n.running).map((n) => n.name);
    replace("health", el("div", {}, leader ? "Leader: " + leader.name + " (timeline " + (leader.member.timeline ?? "?") + ")" : "No leader right now."),
      down.length ? el("div", { class: "small", text: "Stopped: " + down.join(", ") }) : null);
  }
  if (!v.course) {
    if (v.course_error) replace("steps", el("li", { class: "muted", text: "Your lab cannot be judged now: " + v.course_error }));
    return;
  }
  // What is still wrong says nothing the trainee could not see; the hints stay the
  // instructor's to give (`lab exercise hint`).
  const x = v.course.report.exercise;
  replace("exercise", x
    ? el("div", {},
      el("div", {}, el("strong", { text: x.exercise }), " ",
        x.solved ? el("span", { class: "pill good", text: "✓ solved in " + span(x.took ?? x.elapsed) })
          : el("span", { class: "pill change", text: "not solved yet · " + span(x.elapsed) })),
      el("div", { class: "small", text: "Reported: " + x.symptom }),
      x.wrong.length ? el("ul", { class: "problems" }, x.wrong.map((w) => el("li", { text: w }))) : null)
    : el("div", { class: "muted", text: "No exercise runs in your lab." }));
  const steps = v.course.report.steps;
  let past = false;
  replace("steps", steps.map((st) => {
    const cls = st.done ? "done" : past ? "later" : "todo";
    if (!st.done) past = true;
    return el("li", { class: cls }, el("span", { class: "mark", text: st.done ? "✓" : "✗" }),
      el("span", {}, el("strong", { text: st.step }), el("span", { class: "seen", text: st.seen })));
  }));
  const next = steps.find((x) => x.next);
  if (v.course.report.done) replace("next", el("div", { class: "next" }, "Every step of the course is done."));
  // A step taken on the host (a node to start, say) is the instructor's: a trainee's way in
  // is a node, with no lab command.
  else if (next && next.next.on === "host") replace("next", el("div", { class: "next" }, "Next: " + next.step + " — this one is for your instructor, who runs:", el("pre", { text: next.next.command })));
  else if (next) replace("next", el("div", { class: "next" }, "Next, on ", el("strong", { text: next.next.on }),
    next.next.user ? " as " + next.next.user : "", ", type:", el("pre", { text: next.next.command })));
  else replace("next", el("div", { class: "next" }, "The next step cannot be done from inside the lab now; ask your instructor."));
}

if (page === "class") {
  document.getElementById("reset-class").addEventListener("click", async () => {
    if (!confirm("Reset every lab of the class? Each goes back to the state it was created in; what the trainees did is lost.")) return;
    banner(null);
    const r = await post("/api/class/reset");
    if (r) banner("Reset started for " + (r.started.join(", ") || "no lab") + (r.busy.length ? "; left busy: " + r.busy.map((b) => b.lab + " (" + b.message + ")").join("; ") : ""), !r.busy.length);
  });
  follow("/api/class/events", drawClass);
} else if (page === "lab") {
  document.getElementById("reset-lab").addEventListener("click", () => resetLab(labName));
  document.getElementById("check-lab").addEventListener("click", () => checkLab(labName));
  follow("/api/labs/" + encodeURIComponent(labName) + "/events", drawLab);
} else if (page === "trainee") {
  follow("/api/labs/" + encodeURIComponent(labName) + "/events", drawTrainee);
} else {
  // Nothing live on the sign-in and error pages.
  document.getElementById("live").hidden = true;
}
