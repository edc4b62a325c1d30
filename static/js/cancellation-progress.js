// Progress of a cancellation run (templates/admin/_cancellation.html): polls the run's JSON
// endpoint while the job works, and reloads the page once it has finished, so the page then
// lists the orders that failed with their reasons.
document.addEventListener("alpine:init", () => {
  Alpine.data("cancellationProgress", () => ({
    state: "",
    done: 0,
    total: 0,
    failed: 0,
    skipped: 0,
    refundedText: "",
    progressMax: 1,
    stateText: "",
    isFinished: false,

    init() {
      this.root = this.$el;
      this.url = this.root.dataset.progressUrl;
      this.state = this.root.dataset.state;
      const numbers = this.root.querySelectorAll("[data-progress] strong");
      this.done = Number(numbers[0].textContent);
      this.total = Number(numbers[1].textContent);
      this.refundedText = numbers[2].textContent;
      this.failed = Number(numbers[3].textContent);
      this.skipped = Number(numbers[4].textContent);
      this.showState();
      if (!this.isFinished) {
        this.poll();
      }
    },

    showState() {
      this.progressMax = Math.max(this.total, 1);
      this.stateText = this.root.querySelector("[data-state-text]").dataset[this.state] || this.state;
      this.isFinished = this.state === "finished" || this.state === "interrupted";
    },

    async poll() {
      try {
        const response = await fetch(this.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.ok) {
          const progress = await response.json();
          Object.assign(this, {
            state: progress.state,
            done: progress.done,
            total: progress.total,
            failed: progress.failed,
            skipped: progress.skipped,
            refundedText: progress.refunded_text,
          });
          this.showState();
          if (progress.finished) {
            window.location.reload();
            return;
          }
        }
      } catch (error) {
        // The network blinked: try again at the next tick.
      }
      window.setTimeout(() => this.poll(), 1500);
    },
  }));
});
