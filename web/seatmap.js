// The seat map of a showtime: one row of seat buttons per theater row, in the theater's order,
// a legend with each seat type's price, and keyboard navigation (one seat in the tab order;
// the arrow keys move, Home/End go to a row's ends, Enter or Space choose). A seat's label
// says its row, number, type, price and state; held and booked seats stay focusable
// (aria-disabled) so that a screen reader still reaches and reads them.

import { h, money } from "./api.js";

const STATE_TEXT = { available: "available", held: "held by another customer", booked: "booked", selected: "selected by you" };
const TYPES = ["standard", "premium", "accessible"];

export class SeatMap {
  /**
   * `seats`: the seat map's entries ({id, row, number, type, price_cents, status});
   * `onToggle(seat)`: a free seat was chosen or unchosen (answer false to refuse).
   */
  constructor(seats, currency, { onToggle }) {
    this.currency = currency;
    this.onToggle = onToggle;
    this.seats = new Map(seats.map((s) => [s.id, { ...s, selected: false }]));
    this.buttons = new Map();
    this.rows = [];
    for (const seat of seats) {
      let row = this.rows.find((r) => r.name === seat.row);
      if (!row) this.rows.push((row = { name: seat.row, seats: [] }));
      row.seats.push(seat.id);
    }
    for (const row of this.rows) row.seats.sort((a, b) => this.seats.get(a).number - this.seats.get(b).number);
  }

  /** The map's element: the screen, the rows, and the legend. */
  render() {
    const grid = h("div", { class: "seatmap", role: "group", "aria-label": "Seat map", "aria-describedby": "seatmap-help" });
    grid.addEventListener("keydown", (e) => this.#key(e));
    for (const row of this.rows) {
      const line = h("div", { class: "seat-row", role: "group", "aria-label": `Row ${row.name}` }, h("span", { class: "row-name", "aria-hidden": "true" }, row.name));
      for (const id of row.seats) {
        const seat = this.seats.get(id);
        const button = h("button", { type: "button", class: `seat ${seat.type}`, "data-seat": id, tabindex: "-1", onclick: () => this.#toggle(id) }, String(seat.number));
        this.buttons.set(id, button);
        this.#paint(id);
        line.append(button);
      }
      grid.append(line);
    }
    const first = this.rows[0]?.seats[0];
    if (first) this.buttons.get(first).tabIndex = 0;
    return h(
      "div",
      {},
      h("p", { class: "screen", "aria-hidden": "true" }, "SCREEN"),
      h("p", { id: "seatmap-help", class: "muted" }, "Use the arrow keys to move between seats, and Enter or Space to choose one."),
      grid,
      this.#legend(),
    );
  }

  #legend() {
    const prices = {};
    for (const s of this.seats.values()) prices[s.type] ??= s.price_cents;
    const item = (cls, text) => h("li", {}, h("span", { class: `seat ${cls}`, "aria-hidden": "true" }), text);
    return h(
      "ul",
      { class: "legend", "aria-label": "Legend" },
      TYPES.filter((t) => t in prices).map((t) => item(t, `${t[0].toUpperCase()}${t.slice(1)} ${money(prices[t], this.currency)}`)),
      item("standard held", "Held"),
      item("standard booked", "Booked"),
      item("standard selected-sample", "Your choice"),
    );
  }

  /** A seat's state from the server: `available`, `held` or `booked`. */
  setState(id, status) {
    const seat = this.seats.get(id);
    if (!seat || seat.status === status) return false;
    seat.status = status;
    const lost = seat.selected && status !== "available";
    if (lost) seat.selected = false;
    this.#paint(id);
    return lost;
  }

  /** Seats someone else took between choosing and booking: shown as taken, unchosen. */
  markTaken(ids) {
    for (const id of ids) {
      const seat = this.seats.get(id);
      if (!seat) continue;
      seat.selected = false;
      if (seat.status === "available") seat.status = "held";
      this.buttons.get(id)?.classList.add("taken");
      this.#paint(id);
    }
  }

  select(id, on) {
    const seat = this.seats.get(id);
    if (!seat || seat.status !== "available") return;
    seat.selected = on;
    this.#paint(id);
  }

  selected() {
    return [...this.seats.values()].filter((s) => s.selected);
  }

  label(seat) {
    const state = seat.selected ? "selected" : seat.status;
    return `Row ${seat.row}, seat ${seat.number}, ${seat.type}, ${money(seat.price_cents, this.currency)}, ${STATE_TEXT[state]}`;
  }

  #paint(id) {
    const seat = this.seats.get(id);
    const button = this.buttons.get(id);
    if (!button) return;
    button.classList.toggle("held", seat.status === "held");
    button.classList.toggle("booked", seat.status === "booked");
    if (seat.status === "available") button.classList.remove("taken");
    button.setAttribute("aria-pressed", String(seat.selected));
    if (seat.status === "available") button.removeAttribute("aria-disabled");
    else button.setAttribute("aria-disabled", "true");
    button.setAttribute("aria-label", this.label(seat));
    button.dataset.state = seat.selected ? "selected" : seat.status;
  }

  #toggle(id) {
    const seat = this.seats.get(id);
    if (seat.status !== "available") return;
    if (this.onToggle(seat, !seat.selected) === false) return;
    seat.selected = !seat.selected;
    this.#paint(id);
  }

  #key(e) {
    const id = e.target?.dataset?.seat;
    if (!id) return;
    const r = this.rows.findIndex((row) => row.seats.includes(id));
    const c = this.rows[r].seats.indexOf(id);
    const number = this.seats.get(id).number;
    const nearest = (row) => row.seats.reduce((best, s) => (Math.abs(this.seats.get(s).number - number) < Math.abs(this.seats.get(best).number - number) ? s : best));
    let next;
    switch (e.key) {
      case "ArrowLeft": next = this.rows[r].seats[c - 1]; break;
      case "ArrowRight": next = this.rows[r].seats[c + 1]; break;
      case "ArrowUp": next = r > 0 ? nearest(this.rows[r - 1]) : undefined; break;
      case "ArrowDown": next = r < this.rows.length - 1 ? nearest(this.rows[r + 1]) : undefined; break;
      case "Home": next = this.rows[r].seats[0]; break;
      case "End": next = this.rows[r].seats.at(-1); break;
      default: return;
    }
    e.preventDefault();
    if (!next) return;
    this.buttons.get(id).tabIndex = -1;
    const target = this.buttons.get(next);
    target.tabIndex = 0;
    target.focus();
  }
}
