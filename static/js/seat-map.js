// The live seat map of an event page: select seats, see the total, hold them.
// Seat states arrive from the JSON endpoint (polled, with ETags) and, where the browser and
// server allow, from the event's push stream; both feed applyStates().
const STATE_NAMES = { a: "available", r: "reserved", b: "booked" };
const POLL_MS = 3000;
const POLL_MS_WITH_PUSH = 15000;

document.addEventListener("alpine:init", () => {
  Alpine.data("seatMap", () => ({
    rows: [],
    categories: [],
    selected: [],
    message: "",
    messageKind: "info",
    busy: false,
    loaded: false,
    live: false,
    checkoutUrl: "",

    init() {
      const data = this.$el.dataset;
      this.seatsUrl = data.seatsUrl;
      this.holdUrl = data.holdUrl;
      this.streamEventId = data.eventId;
      this.maxSeats = parseInt(data.maxSeats, 10);
      this.onSale = data.onSale === "1";
      this.version = null;
      this.seatsById = {};
      this.categoriesById = {};
      this.refresh();
      this.startUpdates();
    },

    startUpdates() {
      const openStream = window.stagepass && window.stagepass.openSeatStream;
      if (openStream) {
        openStream(this.streamEventId, {
          onSnapshot: (state) => { this.live = true; this.load(state); },
          onChange: (change) => { this.live = true; this.applyStates(change.seats); },
          onGap: () => this.refresh(),
          onDown: () => { this.live = false; },
        });
      }
      // Polling is the fallback: every few seconds without push, rarely with it.
      this.lastPoll = Date.now();
      this.pollTimer = setInterval(() => {
        if (Date.now() - this.lastPoll >= (this.live ? POLL_MS_WITH_PUSH : POLL_MS)) this.refresh();
      }, 500);
    },

    async refresh() {
      this.lastPoll = Date.now();
      const headers = { Accept: "application/json" };
      if (this.version) headers["If-None-Match"] = `"${this.version}"`;
      try {
        const response = await fetch(this.seatsUrl, { headers, credentials: "same-origin" });
        if (response.status === 304) return;
        if (!response.ok) return;
        this.load(await response.json());
      } catch (error) {
        // Offline for a moment: the next poll tries again.
      }
    },

    load(state) {
      this.version = state.version;
      if (!this.loaded) {
        this.build(state);
        return;
      }
      this.applyStates(state.seats.map((seat) => [seat[0], seat[3]]));
    },

    build(state) {
      this.categories = state.categories;
      this.categories.forEach((category) => { this.categoriesById[category.id] = category; });
      const rows = [];
      let current = null;
      state.seats.forEach(([id, row, column, code, categoryId]) => {
        if (!current || current.label !== row) {
          current = { label: row, seats: [] };
          rows.push(current);
        }
        current.seats.push({ id, row, column, label: `${row}${column}`, state: STATE_NAMES[code], categoryId });
      });
      this.rows = rows;
      // Index the reactive copies, so later state changes re-render.
      this.rows.forEach((row) => row.seats.forEach((seat) => { this.seatsById[seat.id] = seat; }));
      this.loaded = true;
    },

    applyStates(pairs) {
      const lost = [];
      pairs.forEach(([id, code]) => {
        const seat = this.seatsById[id];
        if (!seat) return;
        seat.state = STATE_NAMES[code];
        if (seat.state !== "available" && this.selected.includes(id)) lost.push(seat.label);
      });
      if (lost.length) {
        this.selected = this.selected.filter((id) => this.seatsById[id].state === "available");
        this.say(`${lost.join(", ")} ${lost.length === 1 ? "was" : "were"} just taken by someone else.`, "warning");
      }
    },

    isSelected(seat) {
      return this.selected.includes(seat.id);
    },

    isUnavailable(seat) {
      return !this.onSale || (seat.state !== "available" && !this.isSelected(seat));
    },

    seatClass(seat) {
      return `seat seat-${this.isSelected(seat) ? "selected" : seat.state}`;
    },

    seatStyle(seat) {
      const category = this.categoriesById[seat.categoryId];
      return { "--cat": category ? category.color : "" };
    },

    seatTitle(seat) {
      const category = this.categoriesById[seat.categoryId];
      const price = category ? ` · ${category.name} €${category.price}` : "";
      return `${seat.label}${price} · ${this.isSelected(seat) ? "selected" : seat.state}`;
    },

    categoryStyle(category) {
      return { "--cat": category.color };
    },

    toggle(seat) {
      if (this.isSelected(seat)) {
        this.selected = this.selected.filter((id) => id !== seat.id);
        return;
      }
      if (seat.state !== "available" || !this.onSale) return;
      if (this.selected.length >= this.maxSeats) {
        this.say(`You can choose at most ${this.maxSeats} seats per order.`, "warning");
        return;
      }
      this.selected = [...this.selected, seat.id];
      this.message = "";
    },

    get selectedSeats() {
      return this.selected.map((id) => this.seatsById[id]);
    },

    priceOf(seat) {
      const category = this.categoriesById[seat.categoryId];
      return category ? category.price : "0.00";
    },

    get totalText() {
      const cents = this.selectedSeats.reduce((sum, seat) => sum + Math.round(parseFloat(this.priceOf(seat)) * 100), 0);
      return `€${(cents / 100).toFixed(2)}`;
    },

    get nothingSelected() {
      return this.selected.length === 0 || this.busy;
    },

    get holdLabel() {
      if (this.busy) return "Holding…";
      const count = this.selected.length;
      return count ? `Hold ${count} seat${count === 1 ? "" : "s"}` : "Choose seats";
    },

    say(text, kind) {
      this.message = text;
      this.messageKind = kind || "info";
    },

    get messageClass() {
      return `flash flash-${this.messageKind}`;
    },

    get hasMessage() {
      return this.message !== "";
    },

    async hold() {
      if (this.nothingSelected) return;
      this.busy = true;
      try {
        const response = await fetch(this.holdUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": window.stagepass.csrfToken() },
          body: JSON.stringify({ seat_ids: this.selected }),
        });
        const body = await response.json().catch(() => ({}));
        if (response.status === 201) {
          window.location.assign(body.checkout_url);
          return;
        }
        if (response.status === 401 && body.login_url) {
          window.location.assign(body.login_url);
          return;
        }
        if (body.code === "seat_unavailable" && body.seat_ids) {
          body.seat_ids.forEach((id) => { if (this.seatsById[id]) this.seatsById[id].state = "reserved"; });
          this.selected = this.selected.filter((id) => !body.seat_ids.includes(id));
          this.refresh();
        }
        this.say(body.error || "Something went wrong; please try again.", "error");
      } catch (error) {
        this.say("We could not reach StagePass. Check your connection and try again.", "error");
      } finally {
        this.busy = false;
      }
    },
  }));
});
