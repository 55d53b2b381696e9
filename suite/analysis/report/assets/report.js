/* normbench report: the headline's sorter and filters, the detail pane and the charts.
 *
 * Plain JavaScript (no framework): the table is already in the page, this script
 * only reorders and hides its rows; charts are Vega-Lite specs written by Altair,
 * drawn by vega-embed (inlined after this script, window.vegaEmbed). Timings go to
 * window.normbenchReport.timings (milliseconds since navigation start).
 */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var report = { data: DATA, timings: { script: performance.now() }, views: {} };
  window.normbenchReport = report;

  var table = document.getElementById("headline");
  var tbody = table.tBodies[0];
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var keys = DATA.headline.keys;
  var rows = Array.prototype.filter.call(tbody.rows, function (tr) { return tr.hasAttribute("data-group"); })
    .map(function (tr) {
      var cells = Array.prototype.map.call(tr.cells, function (td) { return td.textContent; });
      return { el: tr, rank: Number(tr.getAttribute("data-rank")), group: tr.getAttribute("data-group"),
               cells: cells, text: cells.join(" ").toLowerCase() };
    });
  var filterBox = document.getElementById("filter");
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-axis]"));
  var shownCount = document.getElementById("shown-count");

  // ------------------------------------------------------------------ sorting
  function order(a, b, values, descending) {
    var x = values[a.rank], y = values[b.rank];
    if (x === null || y === null) {  // missing values last, whichever the direction
      return x === y ? a.rank - b.rank : (x === null ? 1 : -1);
    }
    var c = (typeof x === "number" && typeof y === "number") ? x - y
      : String(x).localeCompare(String(y), undefined, { numeric: true });
    return (descending ? -c : c) || a.rank - b.rank;
  }

  function sortBy(index, descending) {
    var values = DATA.headline.sort[index];
    var sorted = rows.slice().sort(function (a, b) { return order(a, b, values, descending); });
    var fragment = document.createDocumentFragment();
    sorted.forEach(function (r) { fragment.appendChild(r.el); });
    tbody.appendChild(fragment);
    headers.forEach(function (th, i) {
      th.setAttribute("aria-sort", i === index ? (descending ? "descending" : "ascending") : "none");
    });
    table.setAttribute("data-sorted-by", keys[index]);
  }
  report.sortBy = function (key, descending) { sortBy(keys.indexOf(key), !!descending); };

  // First click: a metric descending (the largest first, as one reads a leaderboard), a setting (text)
  // ascending; a second click reverses.
  headers.forEach(function (th) {
    th.addEventListener("click", function () {
      var index = keys.indexOf(th.getAttribute("data-key"));
      var state = th.getAttribute("aria-sort");
      var first = th.getAttribute("data-column-group") !== "setting";
      sortBy(index, state === "none" ? first : state === "ascending");
    });
  });

  // ------------------------------------------------------------------ sticky identifying columns
  // The columns that tell rows apart (th.sticky) stay at the left edge while the table scrolls sideways:
  // each sticks at the summed width of the sticky columns before it, measured after layout.
  var stickyHeaders = headers.filter(function (th) { return th.classList.contains("sticky"); });
  function layoutSticky() {
    var left = 0;
    stickyHeaders.forEach(function (th) {
      var index = headers.indexOf(th), offset = left + "px";
      th.style.left = offset;
      Array.prototype.forEach.call(tbody.rows, function (tr) {
        if (tr.cells[index]) tr.cells[index].style.left = offset;
      });
      left += th.getBoundingClientRect().width;
    });
  }
  report.layoutSticky = layoutSticky;
  layoutSticky();
  if (typeof ResizeObserver === "function") {
    var observer = new ResizeObserver(function () { layoutSticky(); });
    stickyHeaders.forEach(function (th) { observer.observe(th); });
  } else {
    window.addEventListener("resize", layoutSticky);
  }

  // ------------------------------------------------------------------ filtering
  function applyFilters() {
    var words = filterBox.value.toLowerCase().split(/\s+/).filter(Boolean);
    var axes = selects.filter(function (s) { return s.value !== ""; }).map(function (s) {
      return [keys.indexOf(s.getAttribute("data-axis")), s.value];
    });
    var shown = 0;
    rows.forEach(function (r) {
      var ok = words.every(function (w) { return r.text.indexOf(w) >= 0; }) &&
        axes.every(function (a) { return r.cells[a[0]] === a[1]; });
      r.el.hidden = !ok;
      if (ok) shown += 1;
    });
    shownCount.textContent = shown + " of " + rows.length + " groups";
  }
  filterBox.addEventListener("input", applyFilters);
  selects.forEach(function (s) { s.addEventListener("change", applyFilters); });

  Array.prototype.forEach.call(document.querySelectorAll("#column-groups input[data-column-group]"), function (box) {
    box.addEventListener("change", function () {
      table.classList.toggle("hide-" + box.getAttribute("data-column-group"), !box.checked);
    });
  });

  // ------------------------------------------------------------------ charts
  function embed(element, spec) {
    if (typeof window.vegaEmbed !== "function") {
      element.textContent = "Charts unavailable: the chart library did not load.";
      element.classList.add("chart-error");
      return Promise.resolve(null);
    }
    return window.vegaEmbed(element, spec, { actions: false, renderer: "svg", mode: "vega-lite" })
      .catch(function (error) {
        element.textContent = "This chart could not be drawn: " + error;
        element.classList.add("chart-error");
        console.error("normbench report:", error);
        return null;
      });
  }

  // ------------------------------------------------------------------ detail pane
  var detail = document.getElementById("detail");
  var detailCharts = document.getElementById("detail-charts");
  var showing = 0;

  var ROLES = ["this group", "none baseline"];  // charts.ROLES: solid, and dashed lighter

  function pushCurve(out, panelId, series, trial, label, role) {
    var epochs = trial.curve.epoch, values = trial.curve[series[0]];
    if (!epochs || !values) return;
    for (var i = 0; i < epochs.length; i += 1) {
      if (values[i] !== null && epochs[i] !== null) {
        out.push({ p: panelId, s: series[1], seed: label, role: role, epoch: epochs[i], v: values[i] });
      }
    }
  }

  // Each trial's curves, and its paired none trial's (same seed and science) under the trial's own label,
  // so a seed's baseline has the seed's colour.
  function curveRows(group) {
    var out = [];
    DATA.detail.panels.forEach(function (panel) {
      panel.series.forEach(function (series) {
        group.trials.forEach(function (t) {
          var trial = DATA.trials[t];
          pushCurve(out, panel.id, series, trial, trial.label, ROLES[0]);
          if (trial.baseline !== null && trial.baseline !== undefined) {
            pushCurve(out, panel.id, series, DATA.trials[trial.baseline], trial.label, ROLES[1]);
          }
        });
      });
    });
    return out;
  }

  function baselineNote(id, group) {
    var paired = group.trials.filter(function (t) {
      return DATA.trials[t].baseline !== null && DATA.trials[t].baseline !== undefined;
    }).length;
    var base = group.baseline !== null && group.baseline !== id ? DATA.groups[group.baseline] : null;
    if (group.baseline === id) return "This group is a baseline (intervention none).";
    if (!paired) return "No none trial of the same seed and settings to compare with.";
    return "Dashed, lighter: the none trial of the same seed and settings" +
      (base ? " (" + base.label + ")" : "") + ", " + paired + " of " + group.trials.length + " trials paired.";
  }

  function fillList(group) {
    var list = document.getElementById("detail-trials");
    list.textContent = "";
    group.trials.forEach(function (t) {
      var trial = DATA.trials[t], li = document.createElement("li"), code = document.createElement("code");
      code.textContent = trial.path;
      li.appendChild(document.createTextNode(trial.label + ": "));
      li.appendChild(code);
      li.setAttribute("data-path", trial.path);
      list.appendChild(li);
    });
    var config = document.querySelector("#detail-config tbody");
    config.textContent = "";
    DATA.configColumns.forEach(function (name, i) {
      var tr = config.insertRow(), key = tr.insertCell(), value = tr.insertCell();
      key.textContent = name;
      value.textContent = group.config[i];
    });
  }

  function showGroup(id) {
    var group = DATA.groups[id];
    if (!group) return null;
    var token = ++showing;
    rows.forEach(function (r) {
      r.el.classList.toggle("selected", r.group === id);
      r.el.setAttribute("aria-selected", r.group === id ? "true" : "false");
    });
    detail.setAttribute("data-group", id);
    detail.removeAttribute("data-rendered");
    document.getElementById("detail-title").textContent = group.label;
    var note = document.getElementById("detail-baseline");
    note.textContent = baselineNote(id, group);
    note.setAttribute("data-baseline", group.baseline === null ? "" : group.baseline);
    fillList(group);
    if (report.views.detail) { report.views.detail.finalize(); report.views.detail = null; }
    detailCharts.textContent = "";
    if (history.replaceState) history.replaceState(null, "", "#group=" + id);
    if (!DATA.detail.spec) { detailCharts.textContent = "No curves in these results."; return Promise.resolve(null); }
    var spec = JSON.parse(JSON.stringify(DATA.detail.spec));
    spec.datasets = spec.datasets || {};
    spec.datasets[DATA.detail.data] = curveRows(group);
    return embed(detailCharts, spec).then(function (result) {
      if (token !== showing) { if (result) result.finalize(); return; }
      report.views.detail = result;
      detail.setAttribute("data-rendered", id);
    });
  }
  report.showGroup = showGroup;

  rows.forEach(function (r) {
    r.el.addEventListener("click", function () { showGroup(r.group); });
    r.el.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); showGroup(r.group); }
    });
  });

  table.setAttribute("data-ready", "true");
  report.timings.headline = performance.now();

  // ------------------------------------------------------------------ after the chart library
  report.start = function () {
    var pending = Array.prototype.map.call(document.querySelectorAll("[data-chart]"), function (element) {
      var spec = DATA.charts[element.getAttribute("data-chart")];
      if (!spec) return Promise.resolve(null);
      return embed(element, spec).then(function (result) {
        if (result) element.setAttribute("data-rendered", "true");
      });
    });
    var match = /^#group=(\d+)$/.exec(window.location.hash);
    if (match) pending.push(showGroup(match[1]));
    return Promise.all(pending).then(function () {
      report.timings.charts = performance.now();
      document.body.setAttribute("data-charts-ready", "true");
    });
  };
})();
