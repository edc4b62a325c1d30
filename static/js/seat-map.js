// The live seat map of an event page: select seats, see the total, hold them.
// Seat states arrive from the JSON endpoint (polled, with ETags) and, where the browser and
// server allow, from the event's push stream. A pushed change carries its seats' states as the
// server read them after the commit, so changes apply in the order they come; a version that is
// not the next one (changes lost, or Redis counting from 1 again) or a change of the event itself
// (cancelled, resized, re-priced) loads the whole map.
const STATE_NAMES = { a: "available", r: "reserved", b: "booked" };
// Without push the page polls every 3 seconds (a buyer must see a change within 5 seconds);
// with push only as a safety net.
const POLL_MS = 3000;
const POLL_MS_WITH_PUSH = 15000;
// The map says when it next changes by itself (a hold runs out, sales end): ask again just after.
const NEXT_CHANGE_MARGIN_MS = 100;
const MIN_TIMED_REFRESH_MS = 500;
const MAX_TIMER_MS = 3600 * 1000; // longer timeouts overflow in browsers; a refresh sets the next one
// A polled map older than a change already pushed is asked for once more, this much later.
const STALE_RETRY_MS = 300;
const STATE_WORDS = { available: "available", reserved: "reserved", booked: "booked" };
// The words come from the page (#seat-map-text), already in its language; {name} are filled in.
let TEXT = {};

function words(key, values) {
  return (TEXT[key] || key).replace(/\{(\w+)\}/g, (whole, name) => (name in (values || {}) ? values[name] : whole));
}

function loadText() {
  const element = document.getElementById("seat-map-text");
  try {
    TEXT = element ? JSON.parse(element.textContent) : {};
  } catch (error) {
    TEXT = {};
  }
}

// 93784000 -> "1d 02:03:04"; never below zero (the switch to selling is the server's to make).
function countdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(total / 86400);
  const clock = [Math.floor((total % 86400) / 3600), Math.floor((total % 3600) / 60), total % 60]
    .map((part) => String(part).padStart(2, "0")).join(":");
  return days ? `${days}d ${clock}` : clock;
}

document.addEventListener("alpine:init", () => {
  loadText();
  Alpine.data("seatMap", () => ({
    rows: [],
    activeId: null,
    announcement: "",
    categories: [],
    selected: [],
    message: "",
    messageKind: "info",
    busy: false,
    loaded: false,
    live: false,
    onSale: false,
    status: "",
    checkoutUrl: "",
    salesStartAt: null, // ms since the epoch, while the event sells later (a countdown shows)
    clock: Date.now(),

    init() {
      const data = this.$el.dataset;
      this.seatsUrl = data.seatsUrl;
      this.holdUrl = data.holdUrl;
      this.streamEventId = data.eventId;
      this.maxSeats = parseInt(data.maxSeats, 10);
      this.onSale = data.onSale === "1";
      this.status = data.status;
      this.priceFormat = new Intl.NumberFormat(data.locale || "en", { style: "currency", currency: data.currency || "EUR" });
      this.countdownLabel = data.countdownLabel;
      this.setSalesStart(data.salesStartAt || null);
      this.version = null; // the ETag of the map as last loaded
      this.shape = null; // rows, columns, prices and seat ids of the map as built
      this.pushed = null; // the version of the last pushed change applied
      this.retriedBehind = false;
      this.refreshAt = null;
      this.refreshTimer = null;
      this.seatsById = {};
      this.categoriesById = {};
      this.refresh();
      this.startUpdates();
    },

    startUpdates() {
      const openStream = window.stagepass && window.stagepass.openSeatStream;
      if (openStream) {
        openStream(this.streamEventId, {
          onSnapshot: (snapshot) => {
            this.live = true;
            this.pushed = snapshot.counter;
            this.load(snapshot.map);
            this.refreshIn(snapshot.next_change_in_ms);
          },
          onChange: (change) => this.applyChange(change),
          onResync: () => this.refresh(),
          onDown: () => { this.live = false; this.pushed = null; },
        });
      }
      // Polling is the fallback: every few seconds without push, rarely with it.
      this.lastPoll = Date.now();
      this.pollTimer = setInterval(() => {
        if (Date.now() - this.lastPoll >= (this.live ? POLL_MS_WITH_PUSH : POLL_MS)) this.refresh();
      }, 500);
    },

    applyChange(change) {
      this.live = true;
      const expected = this.pushed === null ? null : this.pushed + 1;
      this.pushed = change.version;
      if (change.seats.length) {
        this.version = null; // the map shown is no longer the one of that ETag
        this.applyStates(change.seats);
      }
      this.refreshIn(change.next_change_in_ms);
      if (change.event || (expected !== null && change.version !== expected)) this.refresh();
    },

    // Refresh `ms` from now (and a little after), unless a refresh is due sooner anyway.
    refreshIn(ms) {
      if (!Number.isFinite(ms)) return;
      const delay = Math.min(Math.max(ms + NEXT_CHANGE_MARGIN_MS, MIN_TIMED_REFRESH_MS), MAX_TIMER_MS);
      const at = Date.now() + delay;
      if (this.refreshAt !== null && this.refreshAt <= at) return;
      clearTimeout(this.refreshTimer);
      this.refreshAt = at;
      this.refreshTimer = setTimeout(() => { this.refreshAt = null; this.refresh(); }, delay);
    },

    async refresh() {
      this.lastPoll = Date.now();
      const headers = { Accept: "application/json" };
      if (this.version) headers["If-None-Match"] = `"${this.version}"`;
      try {
        const response = await fetch(this.seatsUrl, { headers, credentials: "same-origin" });
        if (response.status === 404) {
          this.setStatus("gone", false);
          return;
        }
        this.refreshIn(parseInt(response.headers.get("X-Next-Change-In-Ms"), 10));
        if (response.status === 304 || !response.ok) return;
        const state = await response.json();
        if (this.behindPush(state)) return;
        this.load(state);
      } catch (error) {
        // Offline for a moment: the next poll tries again.
      }
    },

    // A map read before a change this page already applied (a server's cached copy is up to a
    // second old) is asked for once more; if it still says so, Redis is counting from scratch.
    behindPush(state) {
      const behind = this.live && this.pushed !== null && state.counter !== null && state.counter < this.pushed;
      if (behind && !this.retriedBehind) {
        this.retriedBehind = true;
        setTimeout(() => this.refresh(), STALE_RETRY_MS);
        return true;
      }
      this.retriedBehind = false;
      if (behind) this.pushed = state.counter;
      return false;
    },

    // The countdown ticks here; the map itself switches to selling when the server says so (it
    // asks again when the map says it next changes, which is the on-sale moment).
    setSalesStart(iso) {
      this.salesStartAt = iso ? Date.parse(iso) : null;
      if (this.salesStartAt !== null && !this.clockTimer) {
        this.clockTimer = setInterval(() => { this.clock = Date.now(); }, 1000);
      }
    },

    load(state) {
      this.version = state.version;
      this.setSalesStart(state.sales_start_at || null);
      this.setStatus(state.status, state.on_sale);
      const shape = JSON.stringify([state.rows, state.columns, state.categories, state.seats.map((seat) => [seat[0], seat[4]])]);
      if (shape !== this.shape) {
        this.build(state);
        this.shape = shape;
        return;
      }
      this.applyStates(state.seats.map((seat) => [seat[0], seat[3]]));
    },

    build(state) {
      this.categories = state.categories;
      this.categoriesById = {};
      this.categories.forEach((category) => { this.categoriesById[category.id] = category; });
      const rows = [];
      let current = null;
      state.seats.forEach(([id, row, column, code, categoryId]) => {
        if (!current || current.label !== row) {
          current = { label: row, seats: [] };
          rows.push(current);
        }
        current.seats.push({ id, row, column, label: `${row}${column}`, state: STATE_NAMES[code], categoryId, rowIndex: rows.length - 1 });
      });
      this.rows = rows;
      // Index the reactive copies, so later state changes re-render.
      this.seatsById = {};
      this.rows.forEach((row) => row.seats.forEach((seat) => { this.seatsById[seat.id] = seat; }));
      const kept = this.selected.filter((id) => this.seatsById[id] && this.seatsById[id].state === "available");
      if (kept.length !== this.selected.length) this.say(words("map_changed"), "warning");
      this.selected = kept;
      if (!this.seatsById[this.activeId]) this.activeId = this.firstSeatId();
      this.loaded = true;
    },

    setStatus(status, onSale) {
      this.status = status;
      this.onSale = onSale;
      if (!onSale) this.selected = [];
    },

    get notice() {
      if (this.status === "cancelled" || this.status === "gone") return words(this.status);
      if (!this.onSale && this.salesStartAt !== null) return `${this.countdownLabel} ${countdown(this.salesStartAt - this.clock)}`;
      return this.onSale ? "" : words("ended");
    },

    get noticeClass() {
      return this.status === "published" ? "flash-warning" : "flash-error";
    },

    get hasNotice() {
      return this.notice !== "";
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
        this.say(words(lost.length === 1 ? "taken_one" : "taken_many", { seats: lost.join(", ") }), "warning");
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

    // What a sighted buyer sees of the seat, as one sentence: "Row C, seat 5, Premium, €80.00, available".
    seatName(seat) {
      const category = this.categoriesById[seat.categoryId];
      return words("seat_name", {
        row: seat.row,
        seat: seat.column,
        category: category ? category.name : "",
        price: category ? this.formatPrice(category.price) : "",
        state: words(this.isSelected(seat) ? "selected" : STATE_WORDS[seat.state]),
      });
    },

    formatPrice(amount) {
      return this.priceFormat.format(Number(amount));
    },

    seatElementId(seat) {
      return `seat-${seat.id}`;
    },

    // The map is one Tab stop: only the seat last moved to is in the tab order.
    tabIndexOf(seat) {
      return seat.id === this.activeId ? 0 : -1;
    },

    remember(seat) {
      this.activeId = seat.id;
    },

    firstSeatId() {
      const first = this.rows.length && this.rows[0].seats.length ? this.rows[0].seats[0] : null;
      return first ? first.id : null;
    },

    // Arrow keys move between seats (a missing seat is skipped: rows list only the seats there
    // are); up and down keep to the nearest seat number; Home and End go to the ends of the row,
    // with Ctrl to the first and last seat of the map.
    onKey(event) {
      const seat = this.seatsById[this.activeId];
      if (!seat || !event.target.closest("[role=gridcell]")) return;
      const row = this.rows[seat.rowIndex];
      const index = row.seats.indexOf(seat);
      let target = null;
      if (event.key === "ArrowRight") target = row.seats[index + 1];
      else if (event.key === "ArrowLeft") target = row.seats[index - 1];
      else if (event.key === "ArrowDown") target = this.nearestIn(seat.rowIndex + 1, seat.column);
      else if (event.key === "ArrowUp") target = this.nearestIn(seat.rowIndex - 1, seat.column);
      else if (event.key === "Home") target = event.ctrlKey ? this.rows[0].seats[0] : row.seats[0];
      else if (event.key === "End") {
        const last = this.rows[this.rows.length - 1];
        target = event.ctrlKey ? last.seats[last.seats.length - 1] : row.seats[row.seats.length - 1];
      } else return;
      event.preventDefault();
      if (target) this.focusSeat(target);
    },

    nearestIn(rowIndex, column) {
      const row = this.rows[rowIndex];
      if (!row || !row.seats.length) return null;
      return row.seats.reduce((best, seat) => (Math.abs(seat.column - column) < Math.abs(best.column - column) ? seat : best));
    },

    // Focus moves at once (the seats are on the page already); a key pressed right after then
    // starts from the seat focused, not from one still waiting for the next render.
    focusSeat(seat) {
      this.activeId = seat.id;
      const element = document.getElementById(this.seatElementId(seat));
      if (element) element.focus();
    },

    announce(text) {
      // The same words twice in a row would not be read again: clear first, then say them.
      this.announcement = "";
      setTimeout(() => { this.announcement = text; }, 50);
    },

    categoryStyle(category) {
      return { "--cat": category.color };
    },

    toggle(seat) {
      this.activeId = seat.id;
      if (this.isSelected(seat)) {
        this.selected = this.selected.filter((id) => id !== seat.id);
        this.announce(words("unchosen", { seat: seat.label, count: this.selected.length, total: this.totalText }));
        return;
      }
      if (seat.state !== "available" || !this.onSale) {
        this.announce(words("not_free", { seat: seat.label }));
        return;
      }
      if (this.selected.length >= this.maxSeats) {
        this.say(words("max_seats", { count: this.maxSeats }), "warning");
        return;
      }
      this.selected = [...this.selected, seat.id];
      this.message = "";
      this.announce(words("chosen", { seat: seat.label, count: this.selected.length, max: this.maxSeats, total: this.totalText }));
    },

    get selectedSeats() {
      return this.selected.map((id) => this.seatsById[id]);
    },

    priceOf(seat) {
      const category = this.categoriesById[seat.categoryId];
      return category ? category.price : "0.00";
    },

    get totalText() {
      // Prices arrive as exact decimal strings with at most two places: add them in hundredths.
      const hundredths = this.selectedSeats.reduce((sum, seat) => sum + Math.round(parseFloat(this.priceOf(seat)) * 100), 0);
      return this.formatPrice(hundredths / 100);
    },

    get hasSelection() {
      return this.selected.length > 0;
    },

    get nothingSelected() {
      return this.selected.length === 0 || this.busy;
    },

    get holdLabel() {
      if (this.busy) return words("holding");
      const count = this.selected.length;
      if (!count) return words("choose");
      return count === 1 ? words("hold_one") : words("hold_many", { count });
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
          this.announce(words("held"));
          window.location.assign(body.checkout_url);
          return;
        }
        if (response.status === 401 && body.login_url) {
          window.location.assign(body.login_url);
          return;
        }
        if (response.status === 409 && body.code === "queue_required" && body.waiting_room_url) {
          window.location.assign(body.waiting_room_url);
          return;
        }
        if (body.code === "seat_unavailable" && body.seat_ids) {
          body.seat_ids.forEach((id) => { if (this.seatsById[id]) this.seatsById[id].state = "reserved"; });
          this.selected = this.selected.filter((id) => !body.seat_ids.includes(id));
          this.refresh();
        }
        this.say(body.error || words("failed"), "error");
      } catch (error) {
        this.say(words("offline"), "error");
      } finally {
        this.busy = false;
      }
    },
  }));
});
