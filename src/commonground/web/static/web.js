// Light progressive enhancement. Every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // A select that changes what the page shows submits its (GET) form at once.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.requestSubmit(); });
  });
  // Forms that undo something ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
  // Ctrl+Enter (Cmd+Enter) in the SQL editor runs the query.
  var sql = document.getElementById("sql");
  if (sql) {
    sql.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        sql.form.requestSubmit(sql.form.querySelector('button[value="run"]'));
      }
    });
  }
});
