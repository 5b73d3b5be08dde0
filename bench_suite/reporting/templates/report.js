// The report page's only script: the claims filter, sortable tables, figure views, and a
// self-test (open the page with #selftest) that the browser test reads back. No network.
"use strict";
(function () {
  function claimRows() { return Array.from(document.getElementById("claims-table").tBodies[0].rows); }

  function applyFilter() {
    var verdict = document.getElementById("filter-verdict").value;
    var task = document.getElementById("filter-task").value;
    var rows = claimRows(), shown = 0;
    rows.forEach(function (row) {
      var ok = (!verdict || row.dataset.verdict === verdict) && (!task || row.dataset.task === task);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    document.getElementById("claims-shown").textContent = shown + " of " + rows.length + " claims shown";
    return shown;
  }

  function sortKey(cell) {
    var key = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    var num = parseFloat(key);
    return (key !== "" && !isNaN(num) && isFinite(key)) ? {n: num, s: ""} : {n: null, s: key.toLowerCase()};
  }

  function sortTable(table, column, descending) {
    var body = table.tBodies[0];
    var rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      var x = sortKey(a.cells[column]), y = sortKey(b.cells[column]);
      var c;
      if (x.n !== null && y.n !== null) { c = x.n - y.n; }
      else if (x.n !== null) { c = -1; } else if (y.n !== null) { c = 1; }
      else { c = x.s < y.s ? -1 : (x.s > y.s ? 1 : 0); }
      return descending ? -c : c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.from(table.tHead.rows[0].cells).forEach(function (th, i) {
      if (i === column) { th.setAttribute("aria-sort", descending ? "descending" : "ascending"); }
      else { th.removeAttribute("aria-sort"); }
    });
  }

  function showView(figure, index) {
    figure.querySelectorAll(":scope > .view").forEach(function (v) { v.hidden = v.dataset.view !== String(index); });
    figure.querySelectorAll(":scope > .views button").forEach(function (b) {
      b.classList.toggle("on", b.dataset.view === String(index));
    });
  }

  document.getElementById("filter-verdict").addEventListener("change", applyFilter);
  document.getElementById("filter-task").addEventListener("change", applyFilter);
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.from(table.tHead.rows[0].cells).forEach(function (th, i) {
      th.addEventListener("click", function () { sortTable(table, i, th.getAttribute("aria-sort") === "ascending"); });
    });
  });
  document.querySelectorAll("figure.figure").forEach(function (figure) {
    figure.querySelectorAll(":scope > .views button").forEach(function (b) {
      b.addEventListener("click", function () { showView(figure, b.dataset.view); });
    });
  });

  function selftest() {
    var out = {filter: {}, sorted: null, views: null, svgs: document.querySelectorAll("figure svg").length};
    var select = document.getElementById("filter-verdict");
    Array.from(select.options).forEach(function (option) {
      select.value = option.value;
      var expected = claimRows().filter(function (r) { return !option.value || r.dataset.verdict === option.value; });
      out.filter[option.value || "all"] = [applyFilter(), expected.length];
    });
    select.value = "";
    applyFilter();
    var cells = document.getElementById("cells-table");
    var column = Array.from(cells.tHead.rows[0].cells).findIndex(function (th) { return th.textContent.indexOf("time") >= 0; });
    sortTable(cells, column, true);
    var keys = Array.from(cells.tBodies[0].rows).map(function (r) { return sortKey(r.cells[column]).n; })
      .filter(function (v) { return v !== null; });
    out.sorted = keys.every(function (v, i) { return i === 0 || keys[i - 1] >= v; });
    var multi = document.querySelector("figure.figure .views");
    if (multi) {
      var figure = multi.parentNode;
      showView(figure, 1);
      var visible = Array.from(figure.querySelectorAll(":scope > .view")).filter(function (v) { return !v.hidden; });
      out.views = visible.length === 1 && visible[0].dataset.view === "1";
      showView(figure, 0);
    }
    var pre = document.getElementById("selftest");
    pre.textContent = JSON.stringify(out);
    pre.hidden = false;
  }

  document.body.dataset.ready = "1";
  if (window.location.hash === "#selftest") { selftest(); }
})();
