// Progressive enhancement of the portal's pages (the pages work without it).
// Plans: the breakdown follows the selection at once; the server computes it
// (/planes/desglose), so what is shown is what "Agregar al carrito" adds.
(function () {
  "use strict";
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
