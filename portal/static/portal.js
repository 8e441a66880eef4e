// Progressive enhancement of the portal's pages (the pages work without it).
// Plans: the breakdown follows the selection at once; the server computes it
// (/planes/desglose), so what is shown is what "Agregar al carrito" adds.
(function () {
  "use strict";
  // Tables read as cards on a phone (portal.css): each cell gets its column's
  // name. Key-value tables (price breakdowns) and the drive's file list keep
  // their own layout; without this script a table scrolls sideways instead.
  document.querySelectorAll("table").forEach(function (table) {
    if (table.matches(".breakdown, .totals, .files, .kv")) { return; }
    var rows = Array.prototype.slice.call(table.rows);
    var head = rows.find(function (r) { return r.querySelector("th") && !r.querySelector("td"); });
    if (!head) { return; }
    var names = Array.prototype.map.call(head.cells, function (c) { return c.textContent.trim(); });
    if (!head.closest("thead")) { head.classList.add("head"); }
    rows.forEach(function (r) {
      if (r === head) { return; }
      var col = 0;
      Array.prototype.forEach.call(r.cells, function (cell) {
        if (cell.tagName === "TD" && names[col] && !cell.hasAttribute("data-label")) {
          cell.setAttribute("data-label", names[col]);
        }
        col += cell.colSpan || 1;
      });
    });
    table.classList.add("cards");
    var wrap = table.closest(".scroll");
    if (wrap) { wrap.classList.add("cards-wrap"); }
  });

  var form = document.getElementById("plan-form");
  if (form) {
    var url = form.getAttribute("data-preview");
    var seq = 0;
    var refresh = function () {
      var params = new URLSearchParams();
      ["tier", "period"].forEach(function (n) { params.set(n, form.elements[n].value); });
      var naming = form.querySelector("input[name=naming]:checked");
      params.set("naming", naming ? naming.value : "username");
      var mine = ++seq;
      fetch(url + "?" + params.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null || mine !== seq) { return; }
          var box = document.getElementById("desglose");
          var tmp = document.createElement("div");
          tmp.innerHTML = html;
          var fresh = tmp.querySelector("#desglose");
          if (box && fresh) { box.replaceWith(fresh); }
          window.history.replaceState(null, "", "?" + params.toString());
        })
        .catch(function () { /* the "Ver precio" button still works */ });
    };
    form.addEventListener("change", refresh);
    document.querySelectorAll(".js-hide").forEach(function (el) { el.hidden = true; });
  }
})();
