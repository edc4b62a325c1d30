// Checkout: the hold's countdown and the payment method switch.
document.addEventListener("alpine:init", () => {
  // Under a minute left, the buyer hears once that the hold is about to end.
  const ENDING_SECONDS = 60;
  // Screen readers read a live region's changes, not what it held when the page loaded.
  const FIRST_ANNOUNCEMENT_MS = 1000;

  Alpine.data("holdCountdown", () => ({
    secondsLeft: 0,
    announcement: "",

    init() {
      const data = this.$el.dataset;
      const deadline = Date.now() + parseInt(data.secondsLeft, 10) * 1000;
      this.said = { ending: false, expired: false };
      const tick = () => {
        this.secondsLeft = Math.max(0, Math.round((deadline - Date.now()) / 1000));
        if (this.secondsLeft === 0 && !this.said.expired) {
          this.said.expired = true;
          this.announcement = data.textExpired;
        } else if (this.secondsLeft > 0 && this.secondsLeft < ENDING_SECONDS && !this.said.ending) {
          this.said.ending = true;
          this.announcement = data.textEnding;
        }
        if (this.secondsLeft === 0) clearInterval(this.timer);
      };
      tick();
      this.timer = setInterval(tick, 250);
      setTimeout(() => { if (!this.announcement) this.announcement = data.textPlaced; }, FIRST_ANNOUNCEMENT_MS);
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

    // The visible warning (with the extension, when allowed) from 60 s left until the end.
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
