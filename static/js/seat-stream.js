// Push for the seat map: Server-Sent Events from /events/<id>/stream.
// openSeatStream(eventId, {onSnapshot(map, counter), onChange(change), onDown()}): onDown fires when
// the stream is unavailable (Redis down, a buffering proxy, a network drop); EventSource keeps
// reconnecting by itself and the next snapshot brings the page back to push.
window.stagepass = window.stagepass || {};
window.stagepass.openSeatStream = (eventId, handlers) => {
  if (!window.EventSource) return null;
  const source = new EventSource(`/events/${eventId}/stream`);
  let counter = null;
  source.addEventListener("snapshot", (event) => {
    const data = JSON.parse(event.data);
    counter = data.counter;
    handlers.onSnapshot(data.map, data.counter);
  });
  source.addEventListener("change", (event) => {
    const change = JSON.parse(event.data);
    if (counter !== null && change.version <= counter) return; // already in what we have
    if (counter !== null && change.version !== counter + 1) handlers.onGap && handlers.onGap();
    counter = change.version;
    handlers.onChange(change);
  });
  const down = () => { counter = null; handlers.onDown(); };
  source.addEventListener("down", down);
  source.addEventListener("resync", down);
  source.onerror = down;
  return source;
};
