// The waiting room page: the buyer's place, pushed by the room's stream once the server says it
// is worth one (`listen`: within reach of a seat; far back the page polls rarely, and so without a
// browser's EventSource), and the way to the seat map once admitted.
const ROOM_POLL_MS = 3000;
const listening = new Set(); // the room streams this page opened (not Alpine data: an EventSource is no state)

function minutesAndSeconds(seconds) {
  const total = Math.max(0, Math.round(seconds));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

document.addEventListener("alpine:init", () => {
  Alpine.data("waitingRoom", () => ({
    state: "",
    position: "",
    ahead: "",
    waiting: "",
    wait: null,
    startsAt: null,
    clock: Date.now(),
    live: false,
    pollAfter: null,
    seatsMayReturn: false,
    waitlistOpen: false,

    init() {
      const data = this.$el.dataset;
      this.statusUrl = data.statusUrl;
      this.streamUrl = data.streamUrl;
      this.enterUrl = data.enterUrl;
      this.show(JSON.parse(data.status));
      setInterval(() => { this.clock = Date.now(); }, 1000);
      this.schedulePoll();
    },

    // Without push, ask again when the server says (soon near the head of the queue).
    schedulePoll() {
      setTimeout(async () => {
        if (!this.live) await this.poll();
        this.schedulePoll();
      }, this.pollAfter || ROOM_POLL_MS);
    },

    listen() {
      if (!window.EventSource || listening.has(this.streamUrl)) return;
      listening.add(this.streamUrl); // once per page: an EventSource reconnects by itself
      const source = new EventSource(this.streamUrl);
      source.addEventListener("place", (event) => { this.live = true; this.show(JSON.parse(event.data)); });
      source.addEventListener("done", (event) => {
        source.close();
        this.show(JSON.parse(event.data));
      });
      source.onerror = () => { this.live = false; };
    },

    async poll() {
      try {
        const response = await fetch(this.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.ok) this.show(await response.json());
      } catch (error) {
        // Offline for a moment: the next poll tries again.
      }
    },

    show(status) {
      this.state = status.state;
      if (status.state === "admitted" || status.state === "open" || status.state === "none") {
        this.state = "admitted";
        window.location.assign(status.state === "none" ? window.location.href : this.enterUrl);
        return;
      }
      this.position = status.position === null ? "" : String(status.position);
      this.ahead = status.ahead === null ? "" : String(status.ahead);
      this.waiting = status.waiting === null ? "" : String(status.waiting);
      this.wait = status.estimated_wait_seconds;
      this.pollAfter = status.poll_after_ms;
      if (status.listen) this.listen();
      this.seatsMayReturn = Boolean(status.seats_may_return);
      this.waitlistOpen = Boolean(status.waitlist_open);
      this.startsAt = status.sales_start_in_ms === null ? null : Date.now() + status.sales_start_in_ms;
    },

    get early() { return this.state === "early"; },
    get queued() { return this.state === "queued"; },
    get soldOut() { return this.state === "sold_out"; },
    get admitted() { return this.state === "admitted"; },
    get waitText() { return this.wait === null || this.wait === undefined ? "…" : minutesAndSeconds(this.wait); },
    get startsIn() { return this.startsAt === null ? "" : minutesAndSeconds((this.startsAt - this.clock) / 1000); },
  }));
});
