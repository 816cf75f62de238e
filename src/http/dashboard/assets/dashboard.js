// subdesk dashboard: re-fetches the panels every 10 seconds and swaps them in.
// The session cookie is HttpOnly: this script never sees it, the browser sends it.
(function () {
  "use strict";
  var panels = document.getElementById("panels");
  var status = document.getElementById("refresh-status");
  if (!panels || !status) {
    return;
  }
  var every = 10000;
  var busy = false;

  function say(text) {
    status.textContent = text;
  }

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(panels.getAttribute("data-src"), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "text/html" }
    })
      .then(function (response) {
        if (response.status === 401) {
          // The session ended (signed out elsewhere, expired, token revoked).
          window.location.assign("/dashboard");
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (html !== null) {
          panels.innerHTML = html;
          say("Updated at " + new Date().toLocaleTimeString() + "; refreshes every 10 seconds.");
        }
      })
      .catch(function () {
        say("Could not refresh; trying again in 10 seconds.");
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, every);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      refresh();
    }
  });
})();
