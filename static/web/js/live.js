// The lab's event stream (`ws/labs/{id}/`): one socket, reconnected with back-off, and a
// handler per event type. The database is the truth; after a reconnect the page asks
// for what it missed through `onReconnect`.

const MAX_DELAY_MS = 15000;
const REFUSED = 4403;

export function openStream(path, { handlers = {}, onState = () => {}, onReconnect = () => {} } = {}) {
  let socket = null;
  let delay = 500;
  let stopped = false;
  let opened = false;

  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${path}`);
    socket.onopen = () => {
      onState("live");
      if (opened) onReconnect();
      opened = true;
      delay = 500;
    };
    socket.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      handlers[event.type]?.(event);
    };
    socket.onclose = (close) => {
      if (stopped) return;
      if (close.code === REFUSED) {
        onState("refused");
        return;
      }
      onState("reconnecting");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    };
  };
  connect();
  return { close() { stopped = true; socket?.close(); } };
}
