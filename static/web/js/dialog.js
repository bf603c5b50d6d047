// Focus in a modal dialog: Chromium lets Tab leave a `showModal()` dialog for the
// browser's own controls, so a keyboard user can lose it behind the backdrop. Tab and
// Shift+Tab here wrap round the dialog's own controls; Escape closes it (the browser's).

const FOCUSABLE = "button:not([disabled]), a[href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

export function keepFocusInside(dialog) {
  if (dialog.dataset.focusKept) return;
  dialog.dataset.focusKept = "yes";
  dialog.addEventListener("keydown", (event) => {
    if (event.key !== "Tab") return;
    const controls = [...dialog.querySelectorAll(FOCUSABLE)];
    if (!controls.length) return;
    const first = controls[0];
    const last = controls[controls.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });
}
