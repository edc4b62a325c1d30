// The admin event form's price category lines: the server renders a fixed number of lines (all
// shown without JS); this shows the lines in use, adds a hidden one back, and removes a line by
// emptying it (the server ignores empty lines).
document.addEventListener("alpine:init", () => {
  Alpine.data("categoryLines", () => ({
    shown: [],

    init() {
      const count = this.$root.querySelectorAll("[data-line]").length;
      const visible = Math.max(1, Number(this.$root.dataset.visible) || 1);
      this.shown = Array.from({ length: count }, (_, index) => index < visible);
    },

    get canAdd() {
      return this.shown.includes(false);
    },

    get canRemove() {
      return this.shown.filter(Boolean).length > 1;
    },

    add() {
      const index = this.shown.indexOf(false);
      if (index < 0) return;
      this.shown[index] = true;
      this.$nextTick(() => {
        const name = this.line(index).querySelector("input[type=text]");
        if (name) name.focus();
      });
    },

    remove(index) {
      this.line(index).querySelectorAll("input").forEach((input) => {
        input.value = input.type === "color" ? input.defaultValue : "";
      });
      this.shown[index] = false;
    },

    line(index) {
      return this.$root.querySelector(`[data-line="${index}"]`);
    },
  }));
});
