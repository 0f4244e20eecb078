// Loaded before the app, as a plain script: whatever goes wrong later (a module that fails to
// load or evaluate, an uncaught error), the window shows it instead of staying blank; and an
// unusable system locale is replaced before any module formats a number.
(function () {
  function show(message) {
    var box = document.getElementById("fatal");
    if (!box) {
      box = document.createElement("pre");
      box.id = "fatal";
      box.setAttribute("role", "alert");
      box.style.cssText =
        "position:fixed;left:16px;right:16px;bottom:48px;max-height:40vh;overflow:auto;margin:0;padding:12px;" +
        "background:#2a1215;color:#f3c5c5;border:1px solid #e5534b;border-radius:8px;" +
        "font:12px ui-monospace,monospace;white-space:pre-wrap;z-index:1000";
      box.textContent = "Kiln's interface hit an error. Copy this when reporting it:";
      (document.body || document.documentElement).appendChild(box);
    }
    box.textContent += "\n" + message;
  }
  window.addEventListener("error", function (e) {
    show((e.message || "error") + " (" + (e.filename || "?") + ":" + (e.lineno || "?") + ")" + (e.error && e.error.stack ? "\n" + e.error.stack : ""));
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    show(String((e.reason && e.reason.stack) || e.reason));
  });
  window.kilnFatal = show;

  // WebKitGTK reports the POSIX locale as the language "C" when LANG is unset or C (CI boxes,
  // containers, headless servers), which Intl rejects; libraries that format numbers at load
  // time (uPlot) would then fail. Fall back to a tag Intl accepts.
  try {
    new Intl.NumberFormat(navigator.language);
  } catch (_) {
    Object.defineProperty(Navigator.prototype, "language", { get: function () { return "en-US"; }, configurable: true });
    Object.defineProperty(Navigator.prototype, "languages", { get: function () { return ["en-US"]; }, configurable: true });
  }
})();
