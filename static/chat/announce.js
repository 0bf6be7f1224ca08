// What screen readers hear of a reply: that it started and how it ended, said politely in
// one visually hidden live region, never each token (the message list itself is not live).
// While a reply streams its list item is aria-busy.
//
//   const announcer = new ReplyAnnouncer(document.getElementById("announcer"));
//   announcer.started(item);        // a reply began streaming into `item`
//   announcer.ended(item, event);   // its terminal event: { type, error? }

export const STARTED = "Assistant is replying…";

const ENDED = {
  completed: "Reply finished",
  stopped: "Reply stopped",
  interrupted: "Reply interrupted",
  failed: "Reply failed",
};

/** The announcement for a reply's end: "Reply finished", "Reply failed: <error>"... */
export function endedText({ type, error } = {}) {
  const text = ENDED[type] ?? "Reply ended";
  return error ? `${text}: ${error}` : text;
}

export class ReplyAnnouncer {
  constructor(region) {
    this.region = region;
  }

  started(item) {
    item.setAttribute("aria-busy", "true");
    this.say(STARTED);
  }

  ended(item, event) {
    item.removeAttribute("aria-busy");
    this.say(endedText(event));
  }

  say(text) {
    this.region.textContent = text;
  }
}
