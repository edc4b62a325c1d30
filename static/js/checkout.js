// Checkout: the hold's countdown and the payment method switch.
document.addEventListener("alpine:init", () => {
  Alpine.data("holdCountdown", () => ({
    secondsLeft: 0,

    init() {
      const deadline = Date.now() + parseInt(this.$el.dataset.secondsLeft, 10) * 1000;
      const tick = () => {
        this.secondsLeft = Math.max(0, Math.round((deadline - Date.now()) / 1000));
        if (this.secondsLeft === 0) clearInterval(this.timer);
      };
      tick();
      this.timer = setInterval(tick, 250);
    },

    get clock() {
      const minutes = Math.floor(this.secondsLeft / 60);
      const seconds = String(this.secondsLeft % 60).padStart(2, "0");
      return `${minutes}:${seconds}`;
    },

    get expired() {
      return this.secondsLeft === 0;
    },

    get running() {
      return this.secondsLeft > 0;
    },

    get low() {
      return this.secondsLeft > 0 && this.secondsLeft < 60;
    },

    // Shown (and so announced by the aria-live region around it) from 60 s left until the end.
    get warning() {
      return this.secondsLeft > 0 && this.secondsLeft <= 60;
    },
  }));

  Alpine.data("paymentChoice", () => ({
    method: "card",

    init() {
      const checked = this.$el.querySelector("input[name=method]:checked");
      if (checked) this.method = checked.value;
    },

    choose(event) {
      this.method = event.target.value;
    },

    get isCard() {
      return this.method === "card";
    },
  }));
});
