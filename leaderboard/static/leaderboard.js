// Sortable tables: click a column's button to sort by it; click again to reverse. Empty cells stay last.
(function () {
  "use strict";

  function sortKey(row, index) {
    var cell = row.cells[index];
    var raw = cell ? cell.getAttribute("data-sort") : null;
    return raw === null ? (cell ? cell.textContent.trim() : "") : raw;
  }

  function sortTable(table, th, index) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var headers = table.tHead.rows[0].cells;
    for (var i = 0; i < headers.length; i++) {
      headers[i].removeAttribute("aria-sort");
    }
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = th.getAttribute("data-type") === "number";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var a = sortKey(r1, index);
      var b = sortKey(r2, index);
      if (a === "" || b === "") {
        return (a === "") - (b === "");
      }
      if (numeric) {
        return ascending ? Number(a) - Number(b) : Number(b) - Number(a);
      }
      var order = a.localeCompare(b);
      return ascending ? order : -order;
    });
    rows.forEach(function (row) {
      body.appendChild(row);
    });
  }

  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      var button = th.querySelector("button");
      if (button) {
        button.addEventListener("click", function () {
          sortTable(table, th, index);
        });
      }
    });
  });
})();
