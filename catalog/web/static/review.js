// One key per decision: a key clicks the button that carries it (data-key). Pages work without
// this script; it only adds the keys and keeps a second click from posting twice.
"use strict";

document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) {
    if (event.key === "Escape") target.blur();
    return;
  }
  const button = document.querySelector(`button[data-key="${CSS.escape(event.key)}"]`);
  if (button) {
    event.preventDefault();
    button.click();
  }
});

// A form is posted once: a double click or a repeated key while the next page loads is ignored.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.sent) {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "yes";
}, true);

// A pair answered is shown by the answer's own response (one request per key): the address bar
// then reads "/", so that reloading shows the queue rather than posting the answer again.
const address = document.body.dataset.address;
if (address && location.pathname !== address) history.replaceState(null, "", address);
