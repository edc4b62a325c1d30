// Site-wide Alpine components. Alpine's CSP build evaluates no inline code, so every component
// the templates name is registered here (or in the page's own file under static/js/).
document.addEventListener("alpine:init", () => {
  Alpine.data("navMenu", () => ({
    open: false,
    toggle() {
      this.open = !this.open;
    },
  }));

  Alpine.data("dismissable", () => ({
    visible: true,
    dismiss() {
      this.visible = false;
    },
  }));
});

// The CSRF token for JSON requests made from the page (sent as the X-CSRFToken header).
window.stagepass = {
  csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  },
};
