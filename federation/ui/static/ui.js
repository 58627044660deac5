/* federation UI: the live log tail of an allocation page (server-sent events).
   Kept in a file of its own: the pages allow no inline script. */
(function () {
  "use strict";
  function start() {
    var pre = document.getElementById("log");
    if (!pre) { return; }
    var state = document.getElementById("log-state");
    var source = null;
    function open(stream) {
      if (source) { source.close(); }
      pre.textContent = "";
      state.textContent = "connecting…";
      source = new EventSource(pre.dataset.logUrl + "?stream=" + encodeURIComponent(stream));
      source.onmessage = function (event) {
        var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.textContent += event.data;
        if (atBottom) { pre.scrollTop = pre.scrollHeight; }
        state.textContent = "following";
      };
      source.addEventListener("problem", function (event) {
        state.textContent = event.data + " (retrying)";
      });
      source.addEventListener("end", function () {
        state.textContent = "the task ended";
        source.close();
      });
    }
    document.querySelectorAll("[data-log-stream]").forEach(function (button) {
      button.addEventListener("click", function () {
        document.querySelectorAll("[data-log-stream]").forEach(function (other) {
          other.setAttribute("aria-pressed", String(other === button));
          other.classList.toggle("secondary", other !== button);
        });
        open(button.dataset.logStream);
      });
    });
    open("stdout");
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else { start(); }
}());
