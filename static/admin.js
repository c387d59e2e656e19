// fakeproc admin panel: the phone menu, and every time in UTC or in the browser's own zone.
// The server writes each time in UTC, saying so, inside <time datetime="…Z" data-format=
// "moment|clock">; without this script that text stands.
(function () {
  "use strict";
  var KEY = "fakeproc.zone"; // "utc" or "local", remembered in this browser

  function pad(number, width) { return String(number).padStart(width || 2, "0"); }

  function chosenZone() {
    try { return localStorage.getItem(KEY) === "local" ? "local" : "utc"; }
    catch (error) { return "utc"; } // storage refused (a locked-down browser): UTC
  }

  // "UTC+5:30", "UTC-3", "UTC+0": the offset of this instant, so summer time is right too.
  function offsetLabel(date) {
    var minutes = -date.getTimezoneOffset();
    var sign = minutes < 0 ? "-" : "+";
    minutes = Math.abs(minutes);
    return "UTC" + sign + Math.floor(minutes / 60) + (minutes % 60 ? ":" + pad(minutes % 60) : "");
  }

  function render(time, zone) {
    var date = new Date(time.getAttribute("datetime"));
    if (isNaN(date.getTime())) { return; }
    var local = zone === "local";
    var day = local
      ? [date.getFullYear(), date.getMonth() + 1, date.getDate()]
      : [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
    var clock = local
      ? [date.getHours(), date.getMinutes(), date.getSeconds(), date.getMilliseconds()]
      : [date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds(),
        date.getUTCMilliseconds()];
    var text = pad(clock[0]) + ":" + pad(clock[1]) + ":" + pad(clock[2]) + "." +
      pad(clock[3], 3) + " " + (local ? offsetLabel(date) : "UTC");
    if (time.dataset.format === "moment") {
      text = pad(day[0], 4) + "-" + pad(day[1]) + "-" + pad(day[2]) + " " + text;
    }
    if (time.textContent !== text) { time.textContent = text; }
  }

  function renderWithin(root) {
    var zone = chosenZone();
    if (root.matches && root.matches("time[datetime]")) { render(root, zone); }
    root.querySelectorAll("time[datetime]").forEach(function (time) { render(time, zone); });
  }

  function zoneSwitch() {
    var holder = document.querySelector(".zone-switch");
    if (!holder) { return; }
    holder.hidden = false;
    holder.querySelectorAll("input[name=zone]").forEach(function (radio) {
      radio.checked = radio.value === chosenZone();
      radio.addEventListener("change", function () {
        try { localStorage.setItem(KEY, radio.value); } catch (error) { /* this page only */ }
        renderWithin(document);
      });
    });
  }

  // htmx swaps fresh parts in (the dashboard's list and rules, a followed transaction) with
  // their times in UTC again. An observer re-renders them before the browser paints, where an
  // htmx:afterSettle listener would run after a frame or two of UTC.
  function followSwaps() {
    new MutationObserver(function (changes) {
      changes.forEach(function (change) {
        change.addedNodes.forEach(function (node) {
          if (node.nodeType === Node.ELEMENT_NODE) { renderWithin(node); }
        });
      });
    }).observe(document.body, { childList: true, subtree: true });
  }

  // A narrow screen folds the links behind a Menu button (the CSS decides what is narrow).
  function menu() {
    var button = document.querySelector(".menu-toggle");
    if (!button) { return; }
    function setOpen(open) { button.setAttribute("aria-expanded", open ? "true" : "false"); }
    setOpen(false);
    button.hidden = false;
    button.addEventListener("click", function () {
      setOpen(button.getAttribute("aria-expanded") !== "true");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        setOpen(false);
        button.focus();
      }
    });
  }

  menu();
  zoneSwitch();
  renderWithin(document);
  followSwaps();
})();
