// MinerWatch console: the only script of the pages (served from /static, no inline script anywhere).
// The queue refreshes its rows when /api/alerts/version changes, so new and updated alerts appear without a reload.
"use strict";

(function () {
  const POLL_MS = 4000;

  function refreshRows(tbody) {
    const url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    return fetch(url.toString(), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        const doc = new DOMParser().parseFromString("<table>" + html + "</table>", "text/html");
        const fresh = doc.querySelector("tbody#queue-rows");
        if (fresh) {
          tbody.replaceWith(document.importNode(fresh, true));
          document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || "0") + 1);
        }
      });
  }

  function pollQueue(table) {
    const endpoint = table.dataset.poll;
    function tick() {
      const tbody = document.getElementById("queue-rows");
      fetch(endpoint, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (v) {
          const now = JSON.stringify(v);
          if (tbody && now !== JSON.stringify(JSON.parse(tbody.dataset.version || "{}"))) {
            return refreshRows(tbody);
          }
        })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { window.setTimeout(tick, POLL_MS); });
    }
    window.setTimeout(tick, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const table = document.getElementById("queue");
    if (table && table.dataset.poll) {
      pollQueue(table);
    }
  });
})();
