// fakeproc admin panel: an attempt still in flight grows on screen as its time passes.
// The server renders how long it had been in flight (data-elapsed) and Twilio's budget
// (data-budget); this adds the time since, read from this page's own clock, so a clock
// difference between browser and server changes nothing.
(function () {
  "use strict";
  var SCALE_BUDGETS = 1.5; // the bar's full width, as in fakeproc/web/admin/attempt_marks.py
  var seen = new WeakMap(); // element -> performance.now() when it was first seen

  function format(seconds) { return seconds.toFixed(3) + " s"; }

  function tick() {
    var now = performance.now();
    document.querySelectorAll("[data-in-flight]").forEach(function (words) {
      if (!seen.has(words)) { seen.set(words, now); }
      var budget = parseFloat(words.dataset.budget);
      var elapsed = parseFloat(words.dataset.elapsed) + (now - seen.get(words)) / 1000;
      var text = "in flight for " + format(elapsed);
      if (elapsed > budget) {
        text += ": past Twilio's " + budget + " s, Twilio has given up on it";
      }
      words.textContent = text;
      var attempt = words.closest(".attempt");
      var bar = attempt && attempt.querySelector(".budget-bar");
      if (bar && budget > 0) {
        bar.style.width = Math.min(elapsed / (budget * SCALE_BUDGETS), 1) * 100 + "%";
      }
      if (attempt) { attempt.classList.toggle("attempt-over", elapsed > budget); }
    });
  }

  setInterval(tick, 100);
  document.addEventListener("DOMContentLoaded", tick);
})();
