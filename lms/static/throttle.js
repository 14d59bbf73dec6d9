// Refetching on live frames without a storm: however many frames arrive, `fn` runs at most once
// per `intervalMs`, never twice at once, and always once more after the last trigger, so what
// the page shows ends up as fresh as the last frame.

/** A trigger for `fn` (async): runs it now if idle and the interval has passed; else marks it
 * due, and it runs once when the current run ends and the interval is over. */
export function throttled(fn, intervalMs) {
  let running = false;
  let due = false;
  let last = -Infinity;

  async function run() {
    running = true;
    try {
      do {
        due = false;
        const wait = last + intervalMs - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        last = performance.now();
        await fn();
      } while (due);
    } finally {
      running = false;
    }
  }

  return () => {
    if (running) due = true;
    else run();
  };
}
