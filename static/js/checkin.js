// The door page: scan QR codes with the camera (jsQR) or take typed codes, check them in through
// the API and show the answer big. When the network is gone, a scanned payload's Ed25519
// signature is checked here against the public keys embedded in the page; a genuine one is kept
// in localStorage as "accepted offline, not yet confirmed" and sent (offline: true) once the
// network is back. The server's answer then decides: a ticket that was used meanwhile, or scanned
// twice while offline, is reported as a conflict, never dropped silently.
const DOOR_KEY = "stagepass.door";
const RESCAN_GAP_MS = 1500; // the same code must leave the camera this long before it counts again
const SYNC_EVERY_MS = 4000;
const COUNTS_EVERY_MS = 10000;
const MAX_CONFLICTS_SHOWN = 20;

function readConfig() {
  return JSON.parse(document.getElementById("door").dataset.config);
}

function fromBase64Url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const binary = atob(base64);
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

function format(text, values) {
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? values[name] : ""));
}

// SP1.<kid>.<event_id>.<code>.<sig>, as app/services/tickets.py signs it.
function parsePayload(text) {
  const parts = text.trim().split(".");
  if (parts.length !== 5 || parts[0].toUpperCase() !== "SP1" || text.length > 200) {
    return null;
  }
  const [, kid, eventId, code, signature] = parts;
  return { kid, eventId: parseInt(eventId, 10), code, signature, signed: parts.slice(0, 4).join(".") };
}

async function verifySignature(payload, publicKeys) {
  const key = publicKeys[payload.kid];
  if (!key || !window.crypto || !crypto.subtle) {
    return false;
  }
  try {
    const imported = await crypto.subtle.importKey("raw", fromBase64Url(key), { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify(
      { name: "Ed25519" },
      imported,
      fromBase64Url(payload.signature),
      new TextEncoder().encode(payload.signed),
    );
  } catch (error) {
    return false;
  }
}

document.addEventListener("alpine:init", () => {
  Alpine.data("doorScanner", () => ({
    door: "",
    typed: "",
    checkedIn: 0,
    sold: 0,
    scanning: false,
    online: navigator.onLine,
    queued: 0,
    conflicts: [],
    result: null,

    init() {
      this.config = readConfig();
      this.texts = this.config.texts;
      this.queueKey = `stagepass.checkin.${this.config.eventId}.queue`;
      this.acceptedKey = `stagepass.checkin.${this.config.eventId}.accepted-offline`;
      this.door = localStorage.getItem(DOOR_KEY) || "";
      this.checkedIn = parseInt(document.getElementById("checked-in-count").textContent, 10) || 0;
      this.sold = parseInt(document.getElementById("sold-count").textContent, 10) || 0;
      this.lastCode = null;
      this.lastSeenAt = 0;
      this.syncing = false;
      this.queued = this.queue().length;
      window.addEventListener("online", () => {
        this.online = true;
        this.sync();
      });
      window.addEventListener("offline", () => {
        this.online = false;
      });
      setInterval(() => this.sync(), SYNC_EVERY_MS);
      setInterval(() => this.refreshCounts(), COUNTS_EVERY_MS);
      this.sync();
    },

    // --- what the template shows --------------------------------------------------------------
    get hasResult() {
      return this.result !== null;
    },
    get resultKind() {
      return this.result ? this.result.kind : "";
    },
    get resultClass() {
      return this.result ? `door-result-${this.result.kind}` : "";
    },
    get resultTitle() {
      return this.result ? this.result.title : "";
    },
    get resultSeat() {
      return this.result ? this.result.seat : "";
    },
    get resultMessage() {
      return this.result ? this.result.message : "";
    },
    get hasConflicts() {
      return this.conflicts.length > 0;
    },
    get networkClass() {
      return this.online ? "door-online" : "door-offline";
    },
    get networkText() {
      const data = document.getElementById("door-network").dataset;
      return this.online ? data.online : data.offline;
    },

    show(kind, message, seat) {
      this.result = { kind, title: this.texts[kind] || kind, message: message || "", seat: seat || "" };
    },

    rememberDoor() {
      this.door = this.door.trim();
      localStorage.setItem(DOOR_KEY, this.door);
    },

    // --- the camera -------------------------------------------------------------------------------
    async startCamera() {
      try {
        this.stream = await navigator.mediaDevices.getUserMedia({
          video: { facingMode: "environment" },
          audio: false,
        });
      } catch (error) {
        this.show("invalid", format(this.texts.camera_failed, { message: error.message || error.name }));
        return;
      }
      const video = this.$refs.video;
      video.srcObject = this.stream;
      await video.play();
      this.scanning = true;
      requestAnimationFrame(() => this.scanFrame());
    },

    stopCamera() {
      this.scanning = false;
      if (this.stream) {
        this.stream.getTracks().forEach((track) => track.stop());
        this.stream = null;
      }
    },

    scanFrame() {
      if (!this.scanning) {
        return;
      }
      const video = this.$refs.video;
      if (video.readyState >= video.HAVE_ENOUGH_DATA && video.videoWidth) {
        const canvas = this.$refs.canvas;
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        const context = canvas.getContext("2d", { willReadFrequently: true });
        context.drawImage(video, 0, 0, canvas.width, canvas.height);
        const image = context.getImageData(0, 0, canvas.width, canvas.height);
        const found = jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
        this.seen(found ? found.data : null);
      }
      requestAnimationFrame(() => this.scanFrame());
    },

    // A code held in front of the camera counts once; it counts again after it left the view.
    seen(code) {
      const now = Date.now();
      if (code === null) {
        if (this.lastCode !== null && now - this.lastSeenAt > RESCAN_GAP_MS) {
          this.lastCode = null;
        }
        return;
      }
      const isNew = code !== this.lastCode;
      this.lastCode = code;
      this.lastSeenAt = now;
      if (isNew) {
        this.checkIn(code);
      }
    },

    submitTyped() {
      const code = this.typed.trim();
      if (code) {
        this.typed = "";
        this.checkIn(code);
      }
    },

    // --- checking in ----------------------------------------------------------------------------
    async checkIn(code) {
      this.rememberDoor();
      if (!this.door) {
        this.show("invalid", this.texts.name_door);
        return;
      }
      const scan = { code, door: this.door, scanned_at: new Date().toISOString() };
      let response;
      try {
        response = await this.send(scan);
      } catch (error) {
        this.online = false;
        await this.acceptOffline(scan);
        return;
      }
      this.online = true;
      await this.answer(response);
    },

    send(scan, offline = false) {
      const { code, door, scanned_at } = scan;
      return fetch(this.config.checkinUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": window.stagepass.csrfToken() },
        body: JSON.stringify({ code, door, scanned_at, offline }),
      });
    },

    async answer(response) {
      let body = {};
      try {
        body = await response.json();
      } catch (error) {
        body = {};
      }
      if (body.counts) {
        this.checkedIn = body.counts.checked_in;
        this.sold = body.counts.sold;
      }
      if (body.result) {
        const seat = body.seat ? `${body.seat} · ${body.category}` : "";
        this.show(body.result, body.message, seat);
      } else if (response.status === 401) {
        this.show("invalid", this.texts.login);
      } else {
        this.show("invalid", format(this.texts.error, { message: body.error || response.status }));
      }
      return body;
    },

    // --- offline --------------------------------------------------------------------------------
    queue() {
      return JSON.parse(localStorage.getItem(this.queueKey) || "[]");
    },

    saveQueue(queue) {
      localStorage.setItem(this.queueKey, JSON.stringify(queue));
      this.queued = queue.length;
    },

    acceptedOffline() {
      return JSON.parse(localStorage.getItem(this.acceptedKey) || "[]");
    },

    async acceptOffline(scan) {
      const payload = parsePayload(scan.code);
      if (!payload) {
        this.show("invalid", this.texts.offline_typed);
        return;
      }
      if (!(await verifySignature(payload, this.config.publicKeys))) {
        this.show("invalid", "");
        return;
      }
      if (payload.eventId !== this.config.eventId) {
        this.show("wrong_event", this.texts.offline_wrong_event);
        return;
      }
      const accepted = this.acceptedOffline();
      if (accepted.includes(payload.code)) {
        this.addConflict(`${payload.code}: ${this.texts.conflict_offline}`);
        this.show("conflict", this.texts.conflict_offline);
        // Queued too, so the server records the clash for the admins; already reported here.
        this.saveQueue([...this.queue(), { ...scan, reported: true }]);
        return;
      }
      accepted.push(payload.code);
      localStorage.setItem(this.acceptedKey, JSON.stringify(accepted));
      this.saveQueue([...this.queue(), scan]);
      this.show("offline", this.texts.offline_detail);
    },

    async sync() {
      if (this.syncing || !this.queue().length) {
        return;
      }
      this.syncing = true;
      try {
        while (this.queue().length) {
          const [scan, ...rest] = this.queue();
          let response;
          try {
            response = await this.send(scan, true);
          } catch (error) {
            this.online = false;
            return;
          }
          this.online = true;
          if (response.status === 429 || response.status >= 500) {
            return; // tried again on the next round
          }
          if (response.status === 401 || response.status === 403) {
            this.show("invalid", this.texts.login); // kept until someone logs in again
            return;
          }
          const body = await response.json().catch(() => ({}));
          if (!body.result) {
            // Refused as a request (it can never succeed): reported, never dropped silently.
            const text = format(this.texts.error, { message: body.error || response.status });
            this.addConflict(text);
            this.show("conflict", text);
          }
          if (body.counts) {
            this.checkedIn = body.counts.checked_in;
            this.sold = body.counts.sold;
          }
          if (body.result && body.result !== "admitted" && !scan.reported) {
            this.addConflict(format(this.texts.conflict_synced, { message: body.message || body.result }));
            this.show("conflict", format(this.texts.conflict_synced, { message: body.message || body.result }));
          }
          this.saveQueue(rest);
          const payload = parsePayload(scan.code);
          if (payload) {
            const accepted = this.acceptedOffline().filter((code) => code !== payload.code);
            localStorage.setItem(this.acceptedKey, JSON.stringify(accepted));
          }
        }
      } finally {
        this.syncing = false;
      }
    },

    addConflict(text) {
      const id = Date.now() + Math.random();
      this.conflicts = [{ id, text }, ...this.conflicts].slice(0, MAX_CONFLICTS_SHOWN);
    },

    async refreshCounts() {
      if (!this.online) {
        return;
      }
      try {
        const response = await fetch(this.config.countsUrl, { credentials: "same-origin" });
        if (response.ok) {
          const body = await response.json();
          this.checkedIn = body.counts.checked_in;
          this.sold = body.counts.sold;
        }
      } catch (error) {
        this.online = false;
      }
    },
  }));
});
