// Keeps a scrolling list on its newest content while the reader is there. Content that grows
// (a reply streaming in, a new message) pulls the view down only as long as the reader is at
// the bottom, or within `slack` pixels of it; once they scroll up nothing pulls them back,
// and a "Jump to latest" button shows. The button, or scrolling back down to the bottom,
// starts following again (and hides the button).
//
//   const autoscroll = new AutoScroll(list, { button: jumpButton });
//   autoscroll.jump(); // the reader sent a message: to the bottom, following again

// How far from the bottom still counts as at the bottom (fractional scroll positions, zoom).
export const SLACK_PX = 8;

// Keys that scroll a focused list up.
const UP_KEYS = new Set(["ArrowUp", "PageUp", "Home"]);

export function distanceFromBottom(scroller) {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
}

export class AutoScroll {
  #lastTop; // where the view was after the last scroll, ours or the reader's

  constructor(scroller, { button = null, slack = SLACK_PX, window: win = globalThis } = {}) {
    this.scroller = scroller;
    this.button = button;
    this.slack = slack;
    this.#lastTop = scroller.scrollTop;
    this.#setFollowing(true);
    const changed = () => this.#changed();
    // Any change of the content (a token appended to a text node too), and a resized list.
    new win.MutationObserver(changed).observe(scroller, { childList: true, subtree: true, characterData: true });
    if (win.ResizeObserver) new win.ResizeObserver(changed).observe(scroller);
    scroller.addEventListener("scroll", () => this.#scrolled(), { passive: true });
    // The reader heading up (a wheel turned up, a finger pulling the list down, a key) leaves
    // the bottom at once, before the view has moved and new content could pull it back.
    const up = () => {
      if (this.#scrollable()) this.#setFollowing(false);
    };
    scroller.addEventListener("wheel", (event) => {
      if (event.deltaY < 0) up();
    }, { passive: true });
    let touchY = null;
    scroller.addEventListener("touchstart", (event) => {
      touchY = event.touches[0]?.clientY ?? null;
    }, { passive: true });
    scroller.addEventListener("touchmove", (event) => {
      const y = event.touches[0]?.clientY;
      if (touchY !== null && y > touchY + this.slack) up();
    }, { passive: true });
    scroller.addEventListener("keydown", (event) => {
      if (UP_KEYS.has(event.key) && event.target === scroller) up();
    });
    button?.addEventListener("click", () => this.jump());
    this.#changed();
  }

  get atBottom() {
    return distanceFromBottom(this.scroller) <= this.slack;
  }

  /** To the bottom, and following from now on. */
  jump() {
    this.#toBottom();
    this.#setFollowing(true);
  }

  #scrollable() {
    return this.scroller.scrollHeight - this.scroller.clientHeight > this.slack;
  }

  #toBottom() {
    const scroller = this.scroller;
    scroller.scrollTop = scroller.scrollHeight - scroller.clientHeight;
    this.#lastTop = scroller.scrollTop;
  }

  #changed() {
    if (this.following) this.#toBottom();
    else if (this.atBottom) this.#setFollowing(true); // the content shrank up to the reader
  }

  // Only the reader moves the view up: our own scrolls go to the bottom, and content that
  // shrinks under the view leaves it at the bottom too.
  #scrolled() {
    const top = this.scroller.scrollTop;
    if (this.atBottom) this.#setFollowing(true);
    else if (top < this.#lastTop) this.#setFollowing(false);
    this.#lastTop = top;
  }

  #setFollowing(following) {
    this.following = following;
    if (this.button) this.button.hidden = following;
  }
}
