// The web drive's uploads: one XMLHttpRequest per file, its bytes as the raw
// body (never a form: the server streams it to disk), with a progress bar.
(function () {
  "use strict";
  var zone = document.getElementById("zona-subida");

  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      if (!window.confirm(f.getAttribute("data-confirm"))) { ev.preventDefault(); }
    });
  });
  // One action menu open at a time; "Cerrar" closes it (on a phone it covers the row).
  document.querySelectorAll("table.files details").forEach(function (d) {
    d.addEventListener("toggle", function () {
      if (!d.open) { return; }
      document.querySelectorAll("table.files details[open]").forEach(function (o) {
        if (o !== d) { o.open = false; }
      });
    });
  });
  document.querySelectorAll(".close-menu").forEach(function (b) {
    b.addEventListener("click", function () { b.closest("details").open = false; });
  });
  if (!zone) { return; }

  var input = document.getElementById("archivos");
  var list = document.getElementById("subidas");
  var url = zone.getAttribute("data-url");
  var folder = zone.getAttribute("data-folder");
  var csrf = zone.getAttribute("data-csrf");
  // Free room as the page last knew it ("" when unknown): a hint that spares
  // sending a file that cannot fit; the server decides.
  function available() {
    var raw = zone.getAttribute("data-available");
    return raw === "" || raw === null ? null : Number(raw);
  }
  var queue = [];
  var busy = false;
  var failures = 0;

  // The server's rules (spaces/formats.py): binary units, at most one decimal,
  // half up, the page's locale (es-MX: "586.1 KB", "1,024 bytes" never shown);
  // free room rounded down so it never looks larger than it is.
  var lang = document.documentElement.lang || "es-MX";
  var oneDecimal = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
  var percent = new Intl.NumberFormat(lang, { maximumFractionDigits: 0 });
  var pctSuffix = lang.indexOf("es") === 0 ? " %" : "%";
  function humanBytes(n, down) {
    var units = ["KB", "MB", "GB", "TB"];
    if (n < 1024) { return n + " bytes"; }
    var i = -1;
    while (i < units.length - 1 && (i < 0 || n >= 1024)) { n /= 1024; i++; }
    var tenths = down ? Math.floor(n * 10 + 1e-9) / 10 : Math.round(n * 10) / 10;
    if (!down && tenths >= 1024 && i < units.length - 1) { tenths = Math.round(tenths / 102.4) / 10; i++; }
    return oneDecimal.format(tenths) + " " + units[i];
  }
  function humanPercent(p) { return percent.format(p) + pctSuffix; }

  function row(file) {
    var li = document.createElement("li");
    var name = document.createElement("div");
    name.textContent = file.name + " (" + humanBytes(file.size) + ")";
    var bar = document.createElement("progress");
    bar.max = 100; bar.value = 0;
    var msg = document.createElement("span");
    msg.className = "msg";
    msg.textContent = humanPercent(0);
    li.appendChild(name); li.appendChild(bar); li.appendChild(msg);
    list.appendChild(li);
    return { li: li, bar: bar, msg: msg };
  }

  function fail(ui, text) {
    ui.msg.className = "msg error";
    ui.msg.textContent = text;
    failures++;
  }

  function next() {
    if (busy) { return; }
    var item = queue.shift();
    if (!item) {
      if (failures === 0) { window.setTimeout(function () { window.location.reload(); }, 600); }
      return;
    }
    busy = true;
    var file = item.file, ui = item.ui;
    var replaces = Array.prototype.some.call(document.querySelectorAll("tr[data-name]"),
      function (tr) { return tr.getAttribute("data-name") === file.name; });
    var free = available();
    if (free !== null && !replaces && file.size > free) {
      fail(ui, zone.getAttribute("data-msg-space") + ": " +
        zone.getAttribute("data-msg-nospace").replace("{free}", humanBytes(free, true)));
      busy = false; next(); return;
    }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", url + "?carpeta=" + encodeURIComponent(folder) +
      "&nombre=" + encodeURIComponent(file.name));
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = function (ev) {
      if (ev.lengthComputable && ev.total > 0) {
        var pct = Math.floor(100 * ev.loaded / ev.total);
        ui.bar.value = Math.min(pct, 99);
        ui.msg.textContent = humanPercent(Math.min(pct, 99));
      }
    };
    xhr.onload = function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (xhr.status === 200 || xhr.status === 201) {
        ui.bar.value = 100;
        ui.msg.textContent = humanPercent(100) + " — " + zone.getAttribute("data-msg-done");
        ui.li.setAttribute("data-done", "1");
        var left = available();
        if (left !== null && !replaces) {
          zone.setAttribute("data-available", String(Math.max(left - file.size, 0)));
        }
      } else {
        fail(ui, body && body.message ? body.error + ": " + body.message
          : zone.getAttribute("data-msg-error") + " " + xhr.status);
      }
      busy = false; next();
    };
    xhr.onerror = function () {
      fail(ui, zone.getAttribute("data-msg-network"));
      busy = false; next();
    };
    xhr.send(file);
  }

  function add(files) {
    for (var i = 0; i < files.length; i++) {
      queue.push({ file: files[i], ui: row(files[i]) });
    }
    next();
  }

  input.addEventListener("change", function () { add(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach(function (t) {
    zone.addEventListener(t, function (ev) { ev.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (t) {
    zone.addEventListener(t, function (ev) { ev.preventDefault(); zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (ev) {
    if (ev.dataTransfer && ev.dataTransfer.files) { add(ev.dataTransfer.files); }
  });
}());
