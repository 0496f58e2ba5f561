/* Redress staff console: progressive enhancement only. Pages work without this file.
   CSP-safe: no inline handlers, no eval, no string timers. */
(function () {
  "use strict";
  var zh = (document.documentElement.lang || "").toLowerCase().indexOf("zh") === 0;

  // 1. Live countdown for [data-due] chips.
  function format(ms) {
    var over = ms <= 0;
    var mins = over ? Math.ceil(-ms / 60000) : Math.floor(ms / 60000);
    var d = Math.floor(mins / 1440), h = Math.floor((mins % 1440) / 60), m = mins % 60, s;
    if (zh) {
      s = d > 0 ? d + "天" + h + "小时" : h > 0 ? h + "小时" + m + "分" : m + "分";
      return (over ? "已超时 " : "剩 ") + s;
    }
    s = d > 0 ? d + "d " + h + "h" : h > 0 ? h + "h " + m + "m" : m + "m";
    return s + (over ? " overdue" : " left");
  }

  function setDueClass(el) {
    el.classList.remove("due-ok", "due-warn");
    el.classList.add("due-breached");
  }

  function tick() {
    var now = Date.now();
    var chips = document.querySelectorAll("[data-due]");
    for (var i = 0; i < chips.length; i++) {
      var el = chips[i];
      if (el.classList.contains("due-stopped")) continue;
      var at = Date.parse((el.getAttribute("data-due") || "").trim().replace(" ", "T"));
      if (isNaN(at)) continue;
      var ms = at - now;
      var icon = el.firstElementChild;
      if (icon && !(icon.tagName === "SPAN" && icon.getAttribute("aria-hidden") === "true")) icon = null;
      while (el.lastChild && el.lastChild !== icon) el.removeChild(el.lastChild);
      el.appendChild(document.createTextNode((icon ? " " : "") + format(ms)));
      if (ms <= 0) {
        if (icon) icon.textContent = "✖";
        setDueClass(el);
        var row = el.closest ? el.closest("table.queue tr") : null;
        if (row) setDueClass(row);
      }
    }
  }
  tick();
  window.setInterval(tick, 30000);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) tick(); });

  // 2. Keyboard shortcuts (ignored while typing).
  function typing(t) {
    if (!t || !t.tagName) return false;
    var n = t.tagName;
    return n === "INPUT" || n === "TEXTAREA" || n === "SELECT" || t.isContentEditable;
  }

  function moveRow(dir) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("table.queue tbody tr"));
    if (!rows.length) return false;
    var active = document.activeElement;
    var cur = active && active.closest ? rows.indexOf(active.closest("table.queue tbody tr")) : -1;
    if (cur < 0) {
      for (var i = 0; i < rows.length; i++) if (rows[i].classList.contains("kb-current")) cur = i;
    }
    var next = cur < 0 ? (dir > 0 ? 0 : rows.length - 1) : Math.max(0, Math.min(rows.length - 1, cur + dir));
    rows.forEach(function (r) { r.classList.remove("kb-current"); });
    rows[next].classList.add("kb-current");
    var link = rows[next].querySelector("a[href]");
    if (link) link.focus();
    return true;
  }

  var gAt = 0;
  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
    if (typing(e.target)) return;
    var k = e.key;
    if (gAt && Date.now() - gAt < 1500 && (k === "q" || k === "i")) {
      gAt = 0;
      e.preventDefault();
      window.location.href = k === "q" ? "/queue/mine" : "/inbox";
      return;
    }
    gAt = k === "g" ? Date.now() : 0;
    if (k === "/") {
      var q = document.getElementById("f-q");
      if (q) { e.preventDefault(); q.focus(); if (q.select) q.select(); }
    } else if (k === "j" || k === "k") {
      if (moveRow(k === "j" ? 1 : -1)) e.preventDefault();
    }
  });

  // 3. Confirm before closing a case, when the button carries data-confirm.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form || !form.closest || !form.closest("details.action")) return;
    var action = form.getAttribute("action") || "";
    if (!/\/actions\/close$/.test(action)) return;
    var btn = e.submitter || form.querySelector("button[type=submit], input[type=submit]");
    var msg = btn && btn.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  // 4. The report's print button (the page prints as well from the browser's menu).
  document.addEventListener("click", function (e) {
    if (e.target && e.target.hasAttribute && e.target.hasAttribute("data-print")) window.print();
  });
})();
