// Push for the seat map: Server-Sent Events from /events/<id>/stream.
// openSeatStream(eventId, {onSnapshot(snapshot), onChange(change), onResync(), onDown()}):
// a snapshot is {counter, next_change_in_ms, map}; a change is {version, seats, event,
// next_change_in_ms}. onDown fires when push is unavailable (Redis down, a buffering proxy, a
// network drop): the page polls until the next snapshot, which EventSource or the server brings
// once push works again. onResync asks the page to load the whole map.
window.stagepass = window.stagepass || {};
window.stagepass.openSeatStream = (eventId, handlers) => {
  if (!window.EventSource) return null;
  const source = new EventSource(`/events/${eventId}/stream`);
  const data = (event) => JSON.parse(event.data);
  source.addEventListener("snapshot", (event) => handlers.onSnapshot(data(event)));
  source.addEventListener("change", (event) => handlers.onChange(data(event)));
  source.addEventListener("resync", () => handlers.onResync());
  source.addEventListener("down", () => handlers.onDown());
  source.onerror = () => handlers.onDown();
  return source;
};
