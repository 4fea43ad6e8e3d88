// 高频事项分析 (/hotspots): ECharts from the JSON in data-hchart attributes (no inline script).
(function () {
  "use strict";
  var COLORS = ["#1f5fbf", "#c62828", "#1b8a4b", "#d99a00", "#7b61ff", "#00838f"];
  function empty(text) {
    return { title: { text: text, left: "center", top: "middle",
                      textStyle: { color: "#6b7a8c", fontSize: 14, fontWeight: "normal" } } };
  }
  function option(spec) {
    if (spec.kind === "hbar") {
      if (!spec.data.length) return empty("本月暂无工单");
      return {
        animationDuration: 300, color: COLORS, tooltip: { trigger: "axis" },
        grid: { left: 90, right: 40, top: 10, bottom: 24 },
        xAxis: { type: "value", minInterval: 1 },
        yAxis: { type: "category", data: spec.data.map(function (d) { return d.name; }) },
        series: [{ type: "bar", data: spec.data.map(function (d) { return d.value; }),
                   barMaxWidth: 22, label: { show: true, position: "right" } }]
      };
    }
    if (spec.kind === "lines") {
      if (!spec.series.length) return empty("暂无数据");
      return {
        animationDuration: 300, color: COLORS, tooltip: { trigger: "axis" },
        legend: { top: 0, type: "scroll" },
        grid: { left: 40, right: 16, top: 30, bottom: 24 },
        xAxis: { type: "category", data: spec.months },
        yAxis: { type: "value", minInterval: 1 },
        series: spec.series.map(function (s) {
          return { type: "line", name: s.name, data: s.data, smooth: false, symbolSize: 6 };
        })
      };
    }
    if (spec.kind === "volume") {
      return {
        animationDuration: 300, color: COLORS, tooltip: { trigger: "axis" },
        legend: { top: 0 },
        grid: { left: 44, right: 44, top: 30, bottom: 24 },
        xAxis: { type: "category", data: spec.months },
        yAxis: [{ type: "value", name: "件", minInterval: 1 },
                { type: "value", name: "%", min: 0, max: 100 }],
        series: [
          { type: "bar", name: "受理量", data: spec.count, barMaxWidth: 28 },
          { type: "line", name: "满意率(%)", yAxisIndex: 1, data: spec.satisfaction, connectNulls: true },
          { type: "line", name: "办理时长(小时)", data: spec.hours, connectNulls: true, lineStyle: { type: "dashed" } }
        ]
      };
    }
    return empty("");
  }
  function init(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-hchart]").forEach(function (el) {
      var chart = window.echarts.getInstanceByDom(el) || window.echarts.init(el);
      chart.setOption(option(JSON.parse(el.getAttribute("data-hchart"))), true);
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSwap", function (e) { init(e.target.ownerDocument || document); });
})();
