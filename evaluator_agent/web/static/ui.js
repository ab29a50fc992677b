// incident-proctor UI: small progressive enhancements only; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Filter selects submit their form on change.
  document.querySelectorAll("form.filters select[data-autosubmit]").forEach((s) => {
    s.addEventListener("change", () => s.form.submit());
  });
  // "Expand all" / "collapse all" for tool calls of a timeline.
  document.querySelectorAll("button[data-toggle-all]").forEach((b) => {
    b.addEventListener("click", () => {
      const open = b.dataset.toggleAll === "open";
      document.querySelectorAll(b.dataset.target + " details").forEach((d) => { d.open = open; });
    });
  });
});
