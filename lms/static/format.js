// How the pages write times and shares.

/** `m:ss`, a position in a video. */
export function clock(seconds) {
  const s = Math.floor(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** `2 h 05 min`, `12 min`, `40 s`: an amount of watching. */
export function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const minutes = Math.round(s / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/** `42%`, from a share between 0 and 1. */
export function percent(share) {
  return `${Math.round(share * 100)}%`;
}
