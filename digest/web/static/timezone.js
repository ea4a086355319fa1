// Preselects the browser's IANA time zone on a fresh form. It only sets a <select> value: it never
// submits anything (link scanners run scripts too; a GET must stay harmless).
(function () {
  var select = document.querySelector("select[data-autodetect]");
  if (!select || !window.Intl) return;
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (var i = 0; i < select.options.length; i++) {
    if (select.options[i].value === zone) { select.value = zone; return; }
  }
})();
