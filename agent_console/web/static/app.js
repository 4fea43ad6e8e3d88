// The workspace's own script: charts from data attributes, print buttons. No inline scripts
// (the pages' Content-Security-Policy allows scripts from this origin only).
(function () {
  "use strict";
  // a department's month-by-month trend against the city (the assessment portrait)
  function trendOption(spec) {
    var s = spec.series, line = function (name, data, dashed, axis) {
      // symbols always: a month with figures between months without is a lone point
      return { name: name, type: "line", data: data, connectNulls: true, yAxisIndex: axis || 0,
               showSymbol: true, symbolSize: 7, lineStyle: dashed ? { type: "dashed" } : {} };
    };
    return {
      animationDuration: 300,
      tooltip: { trigger: "axis" },
      legend: { bottom: 0 },
      grid: { left: 44, right: 44, top: 36, bottom: 50 },  // room for the axis names above
      color: ["#1f5fbf", "#1f5fbf", "#1b8a4b", "#1b8a4b", "#d99a00", "#d99a00"],
      xAxis: { type: "category", data: spec.months },
      yAxis: [{ type: "value", name: "得分", min: 0, max: 100 },
              { type: "value", name: "%", min: 0, max: 100 }],
      series: [line("得分", s.score), line("全市平均得分", s.city_score, true),
               line("按时办结率", s.finish_on_time, false, 1),
               line("全市按时办结率", s.city_finish_on_time, true, 1),
               line("满意率", s.satisfaction, false, 1), line("全市满意率", s.city_satisfaction, true, 1)]
    };
  }
  function chartOption(spec) {
    if (spec.kind === "trend") return trendOption(spec);
    var names = spec.data.map(function (d) { return d.name; });
    if (spec.kind === "pie") {
      var data = spec.data.filter(function (d) { return d.value > 0; });
      if (!data.length) {
        return { title: { text: "今日暂无受理", left: "center", top: "middle",
                          textStyle: { color: "#6b7a8c", fontSize: 14, fontWeight: "normal" } } };
      }
      return {
        animationDuration: 300,
        tooltip: { trigger: "item", formatter: "{b}：{c} 件（{d}%）" },
        legend: { bottom: 0 },
        color: ["#1f5fbf", "#1b8a4b", "#d99a00", "#c62828", "#7b61ff"],
        series: [{ type: "pie", radius: ["40%", "68%"], data: data,
                   label: { formatter: "{b}\n{c} 件" } }]
      };
    }
    return {
      animationDuration: 300,
      tooltip: { trigger: "axis" },
      grid: { left: 40, right: 16, top: 20, bottom: 30 },
      xAxis: { type: "category", data: names, axisLabel: { interval: 0 } },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ type: "bar", data: spec.data.map(function (d) { return d.value; }),
                 itemStyle: { color: "#1f5fbf" }, barMaxWidth: 36, label: { show: true, position: "top" } }]
    };
  }
  function initCharts(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var chart = window.echarts.getInstanceByDom(el) || window.echarts.init(el);
      chart.setOption(chartOption(JSON.parse(el.getAttribute("data-chart"))));
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    initCharts(document);
    document.querySelectorAll("[data-print]").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
  });
  document.addEventListener("htmx:afterSwap", function (e) { initCharts(e.target); });
  window.DXE = { initCharts: initCharts };
})();

// Agent console: live events by SSE; a ringing call pops its panel (fetched by htmx).
(function () {
  "use strict";
  var STATES = { "logged-out": "未签入", "ready": "就绪", "on-call": "通话中", "wrap-up": "话后处理", "paused": "小休" };
  var source = null;
  function connect() {
    var el = document.getElementById("console");
    if (!el || source || !document.getElementById("agent-state")) return;
    source = new EventSource(el.getAttribute("data-events"));
    source.addEventListener("pop", function (e) {
      var id = JSON.parse(e.data).call_id;
      window.htmx.ajax("GET", "/console/pop/" + encodeURIComponent(id), { target: "#pop", swap: "innerHTML" })
        .then(function () { document.getElementById("pop").classList.remove("pop-empty"); });
    });
    source.addEventListener("ended", function (e) {
      // the call is over: wrap-up (pause with reason wrapup, countdown to auto-ready)
      var id = JSON.parse(e.data).call_id;
      if (!document.getElementById("pop-" + id)) return;
      window.htmx.ajax("POST", "/console/pop/" + encodeURIComponent(id) + "/ended", { target: "#pop", swap: "innerHTML" });
    });
    source.addEventListener("agent", function (e) {
      var st = JSON.parse(e.data).state, box = document.getElementById("agent-state");
      if (box && st) { box.textContent = STATES[st] || st; box.className = "agent-state state-" + st; box.setAttribute("data-state", st); }
    });
    source.onerror = function () { if (source && source.readyState === 2) { source = null; } };
  }
  document.addEventListener("DOMContentLoaded", connect);
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.target && e.target.id === "status") { if (!document.getElementById("agent-state") && source) { source.close(); source = null; } connect(); }
  });
})();

// Knowledge-base suggestions (agent console, _console_kb.html): Alt+1…5 opens the n-th article.
(function () {
  "use strict";
  document.addEventListener("keydown", function (e) {
    if (!e.altKey || e.ctrlKey || e.metaKey || !/^Digit[1-5]$/.test(e.code)) return;
    var link = document.querySelector("#kb-sugg a[data-n='" + e.code.slice(5) + "']");
    if (!link) return;
    e.preventDefault();
    link.click();
  });
})();

// Agent console: keyboard shortcuts (listed on the page) and the wrap-up countdown.
(function () {
  "use strict";
  function first(sel) { return document.querySelector(sel); }
  function submit(form) { if (form) { window.htmx.trigger(form, "submit"); } }
  function focus(el) { if (el && !el.disabled) { el.focus(); if (el.select && el.tagName === "INPUT") el.select(); } }
  var KEYS = {
    r: function () { var b = first("#btn-ready"); if (b) b.click(); },
    p: function () { var b = first("#btn-pause"); if (b) b.click(); },
    s: function () { submit(first("#pop-form") || first("#edit-form")); },
    n: function () { focus(first("#note-form input[name=note]")); },
    t: function () { focus(first("#transfer-form select[name=queue]")); },
    b: function () { focus(first("#callback-form input[name=due]")); },
    w: function () {
      var sel = first("#wrapup-form select[name=disposition]");
      if (sel && sel.value && document.activeElement === sel) { submit(first("#wrapup-form")); } else { focus(sel); }
    },
    c: function () { focus(first("#callback-list button")); }
  };
  document.addEventListener("keydown", function (e) {
    if (!document.getElementById("console") || !e.altKey || e.ctrlKey || e.metaKey) return;
    var fn = KEYS[(e.key || "").toLowerCase()] || KEYS[(e.code || "").replace("Key", "").toLowerCase()];
    if (!fn) return;
    e.preventDefault();
    fn();
  });
  setInterval(function () {
    document.querySelectorAll(".countdown[data-seconds]").forEach(function (el) {
      var left = Math.max(0, parseInt(el.getAttribute("data-seconds"), 10) - 1);
      el.setAttribute("data-seconds", String(left));
      el.textContent = String(left);
    });
  }, 1000);
})();
