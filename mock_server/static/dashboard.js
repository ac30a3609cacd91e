// dpa-mock dashboard: polls the /__admin JSON API every second and renders runs, scenes, callbacks, the journal
// and the clock. Plain DOM, no framework and no build step; every value goes in through textContent.
(function () {
  "use strict";

  var POLL_MS = 1000;
  var STATUS_ZH = { DEFAULT: "待执行", RUNNING: "执行中", PENDING: "挂起", SUCCESS: "成功", FAIL: "失败" };
  var STATE_ZH = { queued: "排队中", retrying: "重试中", acked: "已确认", gave_up: "已放弃" };
  var VERDICT_ZH = { ack: "确认", retry: "重试", gave_up: "放弃" };
  var NODE_ZH = { waiting: "等待", running: "运行中", pending: "挂起", success: "成功", fail: "失败" };
  var DIMENSION_ZH = { seconds: "秒", minutes: "分钟", hours: "小时", day: "天", weeks: "周", month: "个月" };
  // With --admin-token the page is opened as /__admin/ui?token=…; the API calls then carry it as a header.
  var token = new URLSearchParams(window.location.search).get("token");
  var state = { clock: null, timezone: "Asia/Shanghai", last: {}, busy: false, timer: null };

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (token) { headers["X-Admin-Token"] = token; }
    var init = { method: method, headers: headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (response) {
      return response.json().then(function (envelope) {
        if (envelope.code !== 200) { throw new Error(path + ": " + envelope.code + " " + envelope.message); }
        return envelope.data;
      });
    });
  }

  // -- formatting ---------------------------------------------------------------------------------
  var formatters = {};
  function formatter(kind) {
    var key = kind + "|" + state.timezone;
    if (!formatters[key]) {
      var options = { timeZone: state.timezone, hour12: false, hour: "2-digit", minute: "2-digit", second: "2-digit" };
      if (kind === "full") { options.year = "numeric"; options.month = "2-digit"; options.day = "2-digit"; }
      options.fractionalSecondDigits = 3;
      try {
        formatters[key] = new Intl.DateTimeFormat("zh-CN", options);
      } catch (e) { // an unknown time zone name: fall back to the browser's own
        delete options.timeZone;
        formatters[key] = new Intl.DateTimeFormat("zh-CN", options);
      }
    }
    return formatters[key];
  }
  function time(ms, kind) { return ms === null || ms === undefined ? "—" : formatter(kind || "time").format(new Date(ms)); }

  function duration(seconds) {
    var s = Math.abs(seconds);
    var text = s < 60 ? (Math.round(s * 10) / 10) + " 秒"
      : s < 3600 ? Math.floor(s / 60) + " 分 " + Math.round(s % 60) + " 秒"
        : s < 86400 ? Math.floor(s / 3600) + " 小时 " + Math.round((s % 3600) / 60) + " 分"
          : Math.floor(s / 86400) + " 天 " + Math.round((s % 86400) / 3600) + " 小时";
    return (seconds < 0 ? "-" : "") + text;
  }
  function badge(cls, text, title) {
    var b = el("span", "badge " + cls, text);
    if (title) { b.title = title; }
    return b;
  }
  function statusBadge(status) {
    return badge("status s-" + status, status, STATUS_ZH[status] || status);
  }
  function truncate(text, n) { return text.length > n ? text.slice(0, n) + "…" : text; }
  function newestFirst(items, key) {
    return items.slice().sort(function (a, b) { return (b[key] || 0) - (a[key] || 0); });
  }

  // -- rendering: each table is rebuilt only when its data changed ---------------------------------
  function fill(name, rows, build, extra) {
    var table = $(name);
    var signature = JSON.stringify(rows) + (extra || "");
    $(name + "-count").textContent = rows.length;
    $(name + "-empty").classList.toggle("hidden", rows.length > 0);
    table.classList.toggle("hidden", rows.length === 0);
    if (state.last[name] === signature) { return; }
    state.last[name] = signature;
    var body = document.createElement("tbody");
    rows.forEach(function (row) { body.appendChild(build(row)); });
    table.replaceChild(body, table.tBodies[0]);
  }

  function cell(row, content, cls) {
    var td = el("td", cls);
    if (content instanceof Node) { td.appendChild(content); } else if (content !== undefined) { td.textContent = content; }
    row.appendChild(td);
    return td;
  }

  function renderClock(clock) {
    state.clock = clock;
    if (clock.timezone && clock.timezone !== state.timezone) { state.timezone = clock.timezone; }
    $("clock-mode").textContent = clock.mode === "virtual" ? "虚拟时钟" : "真实时钟";
    $("clock-now").textContent = time(clock.nowMs, "full");
    $("clock-offset").textContent = (clock.mode === "virtual" ? "已推进 " : "偏移 ") + duration(clock.offset) +
      " · " + clock.timezone;
  }

  function runRow(run) {
    var tr = el("tr");
    tr.dataset.instance = run.planInstanceId;
    var id = cell(tr, el("div", "mono", run.planInstanceId));
    id.appendChild(el("div", "muted small", "创建 " + time(run.createTime)));
    cell(tr, run.processPlanId, "mono");
    cell(tr, statusBadge(run.status));

    var line = el("div", "timeline");
    run.history.forEach(function (entry, i) {
      if (i > 0) { line.appendChild(el("span", "arrow", "→")); }
      var step = el("span", "step");
      step.appendChild(statusBadge(entry.status));
      var gap = i > 0 ? " (+" + duration((entry.at - run.history[i - 1].at) / 1000) + ")" : "";
      step.appendChild(el("span", "t", time(entry.at) + gap));
      line.appendChild(step);
    });
    cell(tr, line);

    var done = run.nodes.filter(function (n) { return n.state === "success" || n.state === "fail"; }).length;
    var box = el("div");
    var progress = el("div", "progress");
    var bar = el("div", "bar" + (run.status === "FAIL" ? " fail" : run.status === "PENDING" ? " pending" : ""));
    var fillBar = el("span");
    fillBar.style.width = (run.nodes.length ? Math.round(100 * done / run.nodes.length) : 0) + "%";
    bar.appendChild(fillBar);
    progress.appendChild(bar);
    progress.appendChild(el("span", "muted small", done + "/" + run.nodes.length + " 节点"));
    box.appendChild(progress);
    var nodes = el("div", "nodes");
    run.nodes.forEach(function (n) {
      var chip = el("span", "node n-" + n.state, n.nodeName);
      chip.title = n.modelName + " · " + n.nodeType + " · " + (NODE_ZH[n.state] || n.state) +
        (n.result ? "\n出参: " + n.result : "");
      nodes.appendChild(chip);
    });
    box.appendChild(nodes);
    cell(tr, box);

    var source = el("div", "", run.sceneId ? "场景 " + run.sceneId : "手动执行");
    var where = el("div");
    where.appendChild(source);
    where.appendChild(el("div", "muted small wrap", run.callbackUrl || "无回调地址"));
    cell(tr, where);
    return tr;
  }

  function sceneRow(scene) {
    var tr = el("tr");
    tr.dataset.scene = scene.instanceId;
    cell(tr, scene.instanceId, "mono");
    cell(tr, scene.sceneName);
    cell(tr, scene.processPlanId, "mono");
    var every = "每 " + scene.intervals + " " + (DIMENSION_ZH[scene.dimension] || scene.dimension);
    cell(tr, scene.executeStrategy === "cycle" ? "周期 · " + every : "单次 · " + scene.intervals + " " +
      (DIMENSION_ZH[scene.dimension] || scene.dimension) + "后");
    var next = el("div");
    if (scene.nextFireTime === null) {
      next.textContent = "不再触发";
      next.className = "muted";
    } else {
      next.appendChild(el("div", "", time(scene.nextFireTime, "full")));
      if (state.clock) {
        next.appendChild(el("div", "muted small", "还有 " + duration((scene.nextFireTime - state.clock.nowMs) / 1000)));
      }
    }
    cell(tr, next);
    cell(tr, scene.firedCount + (scene.coalescedCount ? "（合并 " + scene.coalescedCount + "）" : ""));
    cell(tr, scene.lastInstanceId || "—", "mono");
    cell(tr, badge(scene.active ? "v-active" : "v-inactive", scene.active ? "启用" : "已结束"));
    return tr;
  }

  function callbackRow(d) {
    var tr = el("tr");
    tr.dataset.delivery = d.id;
    cell(tr, d.id, "mono");
    cell(tr, d.planInstanceId, "mono");
    cell(tr, statusBadge(d.status));
    cell(tr, badge("v-" + d.state, STATE_ZH[d.state] || d.state, d.state));
    var list = el("div", "attempts");
    if (!d.attempts.length) { list.appendChild(el("span", "muted", "尚未投递")); }
    d.attempts.forEach(function (a) {
      var line = el("div", "attempt");
      line.appendChild(el("span", "muted", "#" + a.n + " " + time(a.at)));
      var answer = a.error ? a.error : "HTTP " + a.httpStatus + " " + JSON.stringify(truncate(a.body || "", 60));
      line.appendChild(el("span", "answer" + (a.verdict === "ack" ? "" : " code-bad"), truncate(answer, 90)));
      line.appendChild(badge("v-" + a.verdict, VERDICT_ZH[a.verdict] || a.verdict, a.verdict));
      list.appendChild(line);
    });
    cell(tr, list);
    cell(tr, d.url, "muted small wrap");
    return tr;
  }

  function describe(value) {
    if (value === null || value === undefined || value === "") { return ""; }
    if (typeof value === "string") { return value; }
    if (typeof value === "object" && Object.keys(value).length === 0) { return ""; }
    return JSON.stringify(value);
  }

  function journalRow(r) {
    var tr = el("tr");
    cell(tr, time(r.at), "mono");
    cell(tr, el("span", "method m-" + r.method, r.method));
    cell(tr, r.path, "mono wrap");
    cell(tr, r.status, r.status >= 400 ? "code-bad" : "");
    cell(tr, r.code === null || r.code === undefined ? "—" : r.code, r.code && r.code !== 200 ? "code-bad" : "");
    cell(tr, (Math.round(r.durationMs * 10) / 10) + " ms", "muted");
    var detail = [describe(r.query), describe(r.body)].filter(Boolean).join("  ·  ");
    cell(tr, truncate(detail, 240), "mono body wrap");
    return tr;
  }

  // -- polling ------------------------------------------------------------------------------------
  function setConnection(ok, text) {
    var conn = $("conn");
    conn.textContent = text;
    conn.className = "conn " + (ok ? "ok" : "bad");
  }

  function refresh() {
    return Promise.all([
      api("GET", "/__admin/clock"), api("GET", "/__admin/runs"), api("GET", "/__admin/scenes"),
      api("GET", "/__admin/callbacks"), api("GET", "/__admin/requests?limit=500")
    ]).then(function (data) {
      renderClock(data[0]);
      fill("runs", newestFirst(data[1], "createTime").slice(0, 200), runRow);
      fill("scenes", newestFirst(data[2], "createTime"), sceneRow, data[0].nowMs);  // "还有 …" moves with the clock
      fill("callbacks", newestFirst(data[3], "id").slice(0, 300), callbackRow);
      var showAdmin = $("show-admin").checked;
      // The page's own polling goes through the journal too; hide /__admin traffic unless asked for.
      var journal = data[4].filter(function (r) { return showAdmin || r.path.indexOf("/__admin") !== 0; });
      fill("journal", journal.reverse().slice(0, 150), journalRow);
      $("updated").textContent = new Date().toLocaleTimeString("zh-CN", { hour12: false });
      setConnection(true, "● 实时");
    }).catch(function (err) {
      setConnection(false, "● 连接中断：" + truncate(String(err.message || err), 80));
    });
  }

  function loop() {
    clearTimeout(state.timer);
    var run = $("pause").checked ? Promise.resolve() : refresh();
    run.then(function () { state.timer = setTimeout(loop, POLL_MS); });
  }

  function advance(seconds) {
    if (state.busy || !(seconds >= 0)) { return; }
    state.busy = true;
    var buttons = document.querySelectorAll("#advance-form button");
    buttons.forEach(function (b) { b.disabled = true; });
    api("POST", "/__admin/clock/advance", { seconds: seconds }).then(renderClock).catch(function (err) {
      setConnection(false, "● 推进失败：" + truncate(String(err.message || err), 80));
    }).then(function () {
      state.busy = false;
      buttons.forEach(function (b) { b.disabled = false; });
      loop();
    });
  }

  function start() {
    $("advance-form").addEventListener("submit", function (event) {
      event.preventDefault();
      advance(parseFloat($("advance-seconds").value));
    });
    document.querySelectorAll("#advance-form button[data-seconds]").forEach(function (button) {
      button.addEventListener("click", function () { advance(parseFloat(button.dataset.seconds)); });
    });
    $("show-admin").addEventListener("change", function () { state.last.journal = null; loop(); });
    $("pause").addEventListener("change", loop);
    loop();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
