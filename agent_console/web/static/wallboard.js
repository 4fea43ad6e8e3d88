// Supervisor wallboard: the board arrives whole by SSE (a full board on every (re)connect, so a
// browser that lost its connection converges without a reload); this script only draws it.
// Control actions POST to /wallboard/control with the session's CSRF token; the PBX's answer or
// the error is shown beside the agent table. No inline scripts (CSP: scripts from this origin).
(function () {
  "use strict";
  var STATES = { "logged-out": "未签入", "ready": "就绪", "on-call": "通话中", "wrap-up": "话后处理", "paused": "小休" };
  var CALLBACK = { "open": "待回拨", "done": "已回拨", "failed": "回拨失败", "cancelled": "已取消", "none": "无号码" };
  var root, labels, control, charts = {}, source = null, lastBoard = null;

  function $(id) { return document.getElementById(id); }
  function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%"; }
  function num(v, d) { return v === null || v === undefined ? "–" : (d ? Number(v).toFixed(d) : String(v)); }
  function dur(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, Math.round(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(x).padStart(2, "0");
  }
  function reason(code) { return (labels.reasons && labels.reasons[code]) || code || "未注明"; }
  function queueName(code) { return (labels.queues && labels.queues[code]) || code; }
  function queueTitle(code) { var l = labels.queues && labels.queues[code]; return l ? l + " (" + code + ")" : code; }
  function td(text, cls) {
    var el = document.createElement("td");
    el.textContent = text;
    if (cls) el.className = cls;
    return el;
  }

  function drawTotals(b) {
    var waiting = 0;
    Object.keys(b.queues).forEach(function (k) { waiting += b.queues[k].live.waiting; });
    var t = b.total || {};
    $("t-waiting").textContent = waiting;
    $("t-offered").textContent = num(t.offered);
    $("t-answered").textContent = num(t.answered);
    $("t-abandoned").textContent = num(t.abandoned);
    $("t-sl1").textContent = pct(t.sl_answered);
    $("t-sl2").textContent = pct(t.sl_offered);
  }

  function drawQueues(b) {
    var body = $("wb-queues");
    body.textContent = "";
    var names = Object.keys(b.queues);
    if (!names.length) {
      var tr0 = document.createElement("tr");
      tr0.appendChild(td("暂无队列数据（交换机未连接？）", "empty")).colSpan = 16;
      body.appendChild(tr0);
      return;
    }
    names.forEach(function (name) {
      var q = b.queues[name], l = q.live, d = q.today, th = q.thresholds;
      var tr = document.createElement("tr");
      tr.setAttribute("data-queue", name);
      var paused = Object.keys(l.paused_by_reason).map(function (r) { return reason(r) + " " + l.paused_by_reason[r]; }).join("，");
      tr.appendChild(td(queueTitle(name)));
      tr.appendChild(td(l.waiting, "q-waiting num" + (l.waiting ? " hot" : "")));
      tr.appendChild(td(dur(l.longest_wait), "num" + (l.longest_wait > th.longest_wait_alert_seconds ? " alarm" : "")));
      tr.appendChild(td(l.agents["logged-in"], "num"));
      tr.appendChild(td(l.agents.ready, "num"));
      tr.appendChild(td(l.agents["on-call"], "num"));
      tr.appendChild(td(l.agents["wrap-up"], "num"));
      tr.appendChild(td(l.agents.paused + (paused ? "（" + paused + "）" : ""), "num"));
      tr.appendChild(td(d.offered, "q-offered num"));
      tr.appendChild(td(d.answered, "num"));
      tr.appendChild(td(d.abandoned, "num"));
      var low = d.sl_answered !== null && d.sl_answered < th.service_level_target;
      tr.appendChild(td(pct(d.sl_answered) + " / " + th.service_level_seconds + "秒", "num" + (low ? " alarm" : "")));
      tr.appendChild(td(pct(d.sl_offered), "num"));
      tr.appendChild(td(d.asa === null ? "–" : d.asa + "秒", "num"));
      tr.appendChild(td(pct(d.abandon_rate), "num"));
      tr.appendChild(td(d.aht === null ? "–" : d.aht + "秒", "num"));
      body.appendChild(tr);
    });
  }

  function controlCell(a) {
    var cell = document.createElement("td");
    cell.className = "wb-actions";
    var spy = null;
    function button(action, text, extra) {
      var btn = document.createElement("button");
      btn.type = "button";
      btn.className = "btn btn-small";
      btn.textContent = text;
      btn.setAttribute("data-action", action);
      btn.addEventListener("click", function () {
        var name = action === "spy" ? spy.value : action;
        act(a, name, extra ? extra() : {});
      });
      cell.appendChild(btn);
      return btn;
    }
    var sel = document.createElement("select");
    sel.className = "wb-reason";
    sel.innerHTML = $("wb-pause-options").innerHTML;
    cell.appendChild(sel);
    button("pause", "小休", function () { return { reason: sel.value }; });
    button("unpause", "就绪");
    button("logout", "签出");
    var qs = document.createElement("select");
    qs.className = "wb-queue";
    qs.innerHTML = $("wb-queue-options").innerHTML;
    cell.appendChild(qs);
    button("queue_add", "加入", function () { return { queue: qs.value }; });
    button("queue_remove", "移出", function () { return { queue: qs.value }; });
    spy = document.createElement("select");
    spy.className = "wb-spy";
    [["listen", "监听"], ["whisper", "耳语"], ["barge", "强插"]].forEach(function (o) {
      var opt = document.createElement("option");
      opt.value = o[0]; opt.textContent = o[1];
      spy.appendChild(opt);
    });
    cell.appendChild(spy);
    button("spy", "接入");
    return cell;
  }

  function drawAgents(b) {
    var body = $("wb-agents");
    var keep = {};
    body.querySelectorAll("tr[data-agent]").forEach(function (tr) { keep[tr.getAttribute("data-agent")] = tr; });
    var cols = control ? 8 : 7;
    var empty = body.querySelector("tr:not([data-agent])");
    if (empty) empty.remove();
    var seen = {};
    b.agents.forEach(function (a, i) {
      seen[a.key] = true;
      var tr = keep[a.key];
      if (!tr) {
        tr = document.createElement("tr");
        tr.setAttribute("data-agent", a.key);
        for (var c = 0; c < 7; c++) tr.appendChild(td(""));
        if (control) tr.appendChild(controlCell(a));
      }
      var cells = tr.children;
      var today = a.today || {};
      cells[0].textContent = "";
      var nm = document.createElement("b");
      nm.textContent = a.name || a.interface;
      var sub = document.createElement("div");
      sub.className = "muted small mono";
      sub.textContent = (a.name ? a.interface : "") + (Object.keys(b.servers).length > 1 ? " @" + a.server : "");
      cells[0].appendChild(nm);
      cells[0].appendChild(sub);
      cells[3].className = "small";
      cells[1].innerHTML = "";
      var badge = document.createElement("span");
      badge.className = "agent-badge state-" + a.state;
      badge.textContent = STATES[a.state] + (a.state === "paused" ? "（" + reason(a.pause_reason) + "）" : "");
      cells[1].appendChild(badge);
      cells[1].className = "a-state";
      cells[2].textContent = a.state_since ? dur(b.ts - a.state_since) : "–";
      cells[3].textContent = a.queues.map(queueName).join("、") || "–";
      cells[4].textContent = num(today.handled === undefined ? 0 : today.handled);
      cells[5].textContent = today.aht === null || today.aht === undefined ? "–" : today.aht + "秒";
      cells[6].textContent = today.paused ? dur(today.paused) : "0:00";
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    });
    Object.keys(keep).forEach(function (k) { if (!seen[k]) keep[k].remove(); });
    if (!b.agents.length) {
      var tr0 = document.createElement("tr");
      tr0.appendChild(td("暂无坐席签入", "empty")).colSpan = cols;
      body.appendChild(tr0);
    }
  }

  function drawAlerts(b) {
    var box = $("wb-alerts");
    box.textContent = "";
    b.alerts.forEach(function (al) {
      var div = document.createElement("div");
      div.className = "wb-alert wb-alert-" + al.level;
      div.textContent = al.text;
      box.appendChild(div);
    });
  }

  function drawAbandoned(b) {
    var body = $("wb-abandoned");
    body.textContent = "";
    (b.abandoned || []).forEach(function (c) {
      var tr = document.createElement("tr");
      var t = new Date(c.started_at * 1000);
      tr.appendChild(td(t.toLocaleTimeString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false })));
      tr.appendChild(td(queueName(c.queue)));
      tr.appendChild(td(num(c.wait_seconds) + "秒"));
      tr.appendChild(td(c.caller || "—", "mono"));
      tr.appendChild(td(CALLBACK[c.callback] || c.callback, "cb-" + c.callback));
      body.appendChild(tr);
    });
    if (!body.children.length) {
      var tr0 = document.createElement("tr");
      tr0.appendChild(td("今日暂无放弃来电", "empty")).colSpan = 5;
      body.appendChild(tr0);
    }
  }

  function drawCharts(b) {
    if (!window.echarts) return;
    var slots = Object.keys(b.halfhours).sort();
    var x = slots.map(function (s) { return s.slice(11); });
    function col(k) { return slots.map(function (s) { return b.halfhours[s][k]; }); }
    function pcts(k) { return slots.map(function (s) { var v = b.halfhours[s][k]; return v === null ? null : Math.round(v * 1000) / 10; }); }
    var base = { animation: false, tooltip: { trigger: "axis" }, legend: { top: 0 },
                 grid: { left: 40, right: 16, top: 30, bottom: 30 }, xAxis: { type: "category", data: x } };
    if (!charts.calls) charts.calls = window.echarts.init($("chart-calls"));
    if (!charts.sl) charts.sl = window.echarts.init($("chart-sl"));
    var none = slots.length ? null : { text: "今日暂无来电", left: "center", top: "middle",
                                      textStyle: { color: "#6b7a8c", fontSize: 14, fontWeight: "normal" } };
    base.title = none || { show: false };
    charts.calls.setOption(Object.assign({}, base, {
      yAxis: { type: "value", minInterval: 1 },
      color: ["#1f5fbf", "#1b8a4b", "#c62828"],
      series: [{ name: "呼入", type: "bar", data: col("offered") },
               { name: "接通", type: "bar", data: col("answered") },
               { name: "放弃", type: "line", data: col("abandoned") }]
    }));
    charts.sl.setOption(Object.assign({}, base, {
      yAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
      color: ["#1b8a4b", "#7b61ff", "#c62828"],
      series: [{ name: "服务水平(÷接通)", type: "line", data: pcts("sl_answered"), connectNulls: true },
               { name: "服务水平(÷呼入−短弃)", type: "line", data: pcts("sl_offered"), connectNulls: true },
               { name: "放弃率", type: "line", data: pcts("abandon_rate"), connectNulls: true }]
    }));
  }

  function draw(b) {
    lastBoard = b;
    drawTotals(b); drawQueues(b); drawAgents(b); drawAlerts(b); drawAbandoned(b); drawCharts(b);
    root.setAttribute("data-version", b.version);
    $("wb-time").textContent = "更新于 " + new Date(b.ts * 1000).toLocaleTimeString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });
  }

  function csrf() {
    var h = document.body.getAttribute("hx-headers");
    try { return JSON.parse(h)["X-CSRF-Token"]; } catch (e) { return ""; }
  }

  function act(a, action, extra) {
    var body = new URLSearchParams(Object.assign({ action: action, server: a.server, interface: a.interface }, extra));
    if (action === "listen" || action === "whisper" || action === "barge") body.set("ext", $("wb-ext").value.trim());
    var out = $("wb-result");
    out.textContent = "正在发送…";
    fetch(root.getAttribute("data-control-url") || "/wallboard/control", {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "X-CSRF-Token": csrf(), "Content-Type": "application/x-www-form-urlencoded" }
    }).then(function (r) {
      return r.text().then(function (t) { out.innerHTML = t; if (r.status >= 500) out.textContent = "服务器错误，请稍后重试"; });
    }).catch(function () { out.textContent = "网络中断，操作可能未送达，请刷新后确认"; });
  }

  function connect() {
    var conn = $("wb-conn");
    source = new EventSource(root.getAttribute("data-events"));
    source.addEventListener("board", function (e) {
      conn.textContent = "实时"; conn.className = "conn conn-ok";
      draw(JSON.parse(e.data));
    });
    source.onerror = function () { conn.textContent = "重新连接中…"; conn.className = "conn conn-wait"; };
  }

  document.addEventListener("DOMContentLoaded", function () {
    root = $("wallboard");
    if (!root) return;
    labels = JSON.parse(root.getAttribute("data-labels") || "{}");
    control = root.getAttribute("data-control") === "yes";
    connect();
    window.addEventListener("resize", function () { Object.keys(charts).forEach(function (k) { charts[k].resize(); }); });
    window.DXE_WALLBOARD = { last: function () { return lastBoard; } };
  });
})();
