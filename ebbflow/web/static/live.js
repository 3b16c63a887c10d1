// ebbflow's status page: replace the live part with each server-sent render. The page
// works without this file (it reloads every 5 s instead); nothing here acts on anything.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  var source = new EventSource(live.dataset.events + "?since=" + live.dataset.version);
  source.addEventListener("live", function (event) {
    live.innerHTML = event.data;
    live.dataset.version = event.lastEventId;
    document.body.classList.remove("stale");
  });
  source.onerror = function () { document.body.classList.add("stale"); };
})();
