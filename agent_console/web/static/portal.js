// The public portal's small helpers (no inline script: the CSP allows 'self' only).
(function () {
  "use strict";
  // The knowledge suggestions endpoint reads ?q=: send the content field's text under that name.
  document.addEventListener("htmx:configRequest", function (e) {
    var elt = e.detail.elt;
    if (elt && elt.id === "content") {
      e.detail.parameters = { q: elt.value.slice(0, 200) };
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var file = document.getElementById("attachment");
    var msg = document.getElementById("attachment-error");
    if (file && msg) {
      file.addEventListener("change", function () {
        var max = parseInt(file.getAttribute("data-max-bytes") || "0", 10);
        var f = file.files && file.files[0];
        if (f && max && f.size > max) {
          msg.textContent = "附件过大：最大 " + Math.round(max / 1048576) + "MB，请压缩后重新选择";
          msg.hidden = false;
          file.value = "";
        } else {
          msg.hidden = true;
        }
      });
    }
    // one submission per click (the server's idempotency key covers a double tap anyway)
    document.querySelectorAll("form.p-form, form.p-confirm").forEach(function (form) {
      form.addEventListener("submit", function () {
        setTimeout(function () {
          form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
        }, 0);
      });
    });
  });
})();
