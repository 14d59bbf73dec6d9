// A page's live socket (/api/v1/ws/notifications or /api/v1/ws/progress/{course_id}), speaking
// the connection part of proto/frames.py for it: `auth` first with the session's access token,
// `batch` frames unpacked, `ping` answered, and reconnecting with a jittered backoff. A refusal
// for an expired token leads to one refresh (else the sign-in form) and a new connection; other
// refusals (forbidden, not found) end it, since trying again would not help.
//
//   const socket = liveSocket(path, { onFrame, onState, onClose, deviceId });
//   socket.send({ type: "subscribe" });
import { accessToken, refresh, signIn } from "/static/session.js";

const MAX_BACKOFF_STEP = 6;  // 250 ms x 2^6: at most ~16 s between attempts

/**
 * onFrame(frame): every frame but `batch` and `ping`, `welcome` included.
 * onState(state): "live" once welcomed, "reconnecting", or "offline" when it gives up.
 * onClose(): the connection dropped (before any reconnect), for frames in flight.
 */
export function liveSocket(path, { onFrame, onState = () => {}, onClose = () => {}, deviceId } = {}) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let socket = null;
  let welcomed = false;
  let retry = 0;

  function connect() {
    const ws = new WebSocket(`${scheme}//${location.host}${path}`);
    let refused = null;  // the code of an `error` frame refusing the connection itself
    socket = ws;
    welcomed = false;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: accessToken(), device_id: deviceId }));
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      for (const f of frame.type === "batch" ? frame.frames : [frame]) {
        if (f.type === "ping") { ws.send(JSON.stringify({ type: "pong", t: f.t })); continue; }
        if (f.type === "welcome") { retry = 0; welcomed = true; onState("live"); }
        if (f.type === "error" && f.id == null) refused = f.code;
        onFrame(f);
      }
    };
    ws.onclose = async (event) => {
      welcomed = false;
      onClose();
      onState("reconnecting");
      if (event.code === 1008 && refused === "unauthenticated") {
        if (!(await refresh())) await signIn("Your session has ended; sign in again.");
      } else if (event.code === 1008) {
        onState("offline");
        return;
      }
      retry = Math.min(retry + 1, MAX_BACKOFF_STEP);
      setTimeout(connect, 250 * 2 ** retry * (0.5 + Math.random()));
    };
  }

  connect();
  return {
    /** Send `frame` if the socket is up and welcomed; whether it was sent. */
    send(frame) {
      if (!welcomed || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(JSON.stringify(frame));
      return true;
    },
    get welcomed() { return welcomed; },
  };
}
