// The booking site: movies, a movie's showtimes by day, the live seat map, booking with an
// inline sign-in, the hold's countdown and the card form, the outcome, my bookings (cancel and
// refund), and my notifications. Views are hash routes (#/movies/{id}, #/showtimes/{id}, ...);
// every call is to the public REST API (api.js).

import { ApiError, alertBox, all, announce, api, dateTime, describe, h, money, session, values } from "./api.js";
import { SeatMap } from "./seatmap.js";

const main = document.getElementById("main");
const TEST_CARDS = document.documentElement.dataset.testCards === "true";
// The simulated card gateway's test cards (docs/rules.md).
const CARDS = [
  ["4242424242424242", "approved"],
  ["4000000000000002", "declined (card_declined)"],
  ["4000000000009995", "declined (insufficient_funds)"],
];

// What the current view must stop when the page moves on (a stream, a timer).
let leaving = [];
function onLeave(fn) {
  leaving.push(fn);
}

const theaters = new Map();
async function theater(id) {
  if (!theaters.has(id)) theaters.set(id, api("GET", `/api/movies/theaters/${id}`, { auth: false }));
  return theaters.get(id);
}
const movies = new Map();
async function movie(id) {
  if (!movies.has(id)) movies.set(id, api("GET", `/api/movies/movies/${id}`, { auth: false }));
  return movies.get(id);
}

// Each navigation's number: a view still loading when the next navigation began is dropped.
let navigation = 0;
const STALE = Symbol("stale");

/**
 * Replaces the view with a heading (focused, so that a screen reader starts there) and
 * content, unless navigation `nav` was overtaken by another.
 */
function view(nav, title, ...content) {
  if (nav !== navigation) throw STALE;
  for (const fn of leaving) fn();
  leaving = [];
  // Set again by a seat map once its stream's snapshot is in.
  delete main.dataset.live;
  const heading = h("h1", { tabindex: "-1" }, title);
  main.replaceChildren(heading, ...content.filter(Boolean));
  document.title = `${title} · boxoffice`;
  heading.focus();
  return heading;
}

function fail(box, error) {
  box.textContent = describe(error);
}

// --- header -----------------------------------------------------------------------------

function header(user) {
  document.getElementById("who").textContent = user ? `Signed in as ${user.username}` : "";
  document.getElementById("sign-in-link").hidden = !!user;
  document.getElementById("sign-out").hidden = !user;
}
document.getElementById("sign-out").addEventListener("click", async () => {
  await session.signOut();
  announce("Signed out");
  location.hash = "#/";
});
session.onChange(header);
header(session.user);

// --- sign in / register (a panel usable inside any view) -----------------------------------

/** A sign-in form that can switch to registration; `done(user)` after either succeeds. */
function authPanel(done) {
  const box = h("div", { class: "card stack" });
  const show = (mode) => {
    const errors = alertBox();
    const field = (name, label, type = "text", autocomplete) =>
      h("div", {}, h("label", { for: `auth-${name}` }, label), h("input", { id: `auth-${name}`, name, type, required: true, autocomplete }));
    const form = h(
      "form",
      { class: "stack", novalidate: true },
      mode === "sign-in"
        ? [field("username", "Email or username", "text", "username"), field("password", "Password", "password", "current-password")]
        : [field("email", "Email", "email", "email"), field("username", "Username", "text", "username"), field("password", "Password (at least 8 characters)", "password", "new-password")],
      errors,
      h("button", { type: "submit" }, mode === "sign-in" ? "Sign in" : "Create account"),
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const v = values(form);
      errors.textContent = "";
      try {
        const user = mode === "sign-in" ? await session.signIn(v.username, v.password) : await session.register(v.email, v.username, v.password);
        announce(`Signed in as ${user.username}`);
        done(user);
      } catch (err) {
        fail(errors, err);
        form.querySelector("input")?.focus();
      }
    });
    box.replaceChildren(
      h("h2", {}, mode === "sign-in" ? "Sign in to book" : "Create an account"),
      form,
      h(
        "p",
        {},
        mode === "sign-in" ? "New here? " : "Have an account? ",
        h("button", { type: "button", class: "secondary", onclick: () => show(mode === "sign-in" ? "register" : "sign-in") }, mode === "sign-in" ? "Create an account" : "Sign in instead"),
      ),
    );
  };
  show("sign-in");
  return box;
}

// --- movies -------------------------------------------------------------------------------

let genres = null;
async function movieList(params, nav) {
  const q = params.get("q") || "";
  const genre = params.get("genre") || "";
  const page = Number(params.get("page") || 1);
  const results = h("div", { "aria-live": "polite" });
  const search = h("input", { id: "q", name: "q", type: "search", value: q });
  const select = h("select", { id: "genre", name: "genre" }, h("option", { value: "" }, "All genres"));
  const form = h(
    "form",
    { class: "toolbar", role: "search" },
    h("div", {}, h("label", { for: "q" }, "Search titles"), search),
    h("div", {}, h("label", { for: "genre" }, "Genre"), select),
    h("div", {}, h("button", { type: "submit" }, "Search")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    if (search.value.trim()) next.set("q", search.value.trim());
    if (select.value) next.set("genre", select.value);
    location.hash = `#/?${next}`;
  });
  view(nav, "Now showing", form, results);
  genres ??= all("/api/movies/movies", { auth: false, max: 300 }).then((ms) => [...new Set(ms.map((m) => m.genre))].sort());
  for (const g of await genres) select.append(h("option", { value: g, selected: g === genre }, g));

  const query = new URLSearchParams({ page, per_page: 24 });
  if (q) query.set("q", q);
  if (genre) query.set("genre", genre);
  try {
    const res = await api("GET", `/api/movies/movies?${query}`, { auth: false });
    if (!res.items.length) {
      results.replaceChildren(h("p", {}, "No movie matches."));
      return;
    }
    const pages = Math.ceil(res.total / res.per_page);
    const link = (p, text) => {
      const next = new URLSearchParams(params);
      next.set("page", p);
      return h("a", { class: "button secondary", href: `#/?${next}` }, text);
    };
    results.replaceChildren(
      ...[
        h("p", { class: "muted" }, `${res.total} movie${res.total === 1 ? "" : "s"}`),
        h(
          "ul",
          { class: "grid" },
          res.items.map((m) =>
            h(
              "li",
              { class: "card movie" },
              h("h2", {}, h("a", { href: `#/movies/${m.id}` }, m.title)),
              h("p", { class: "meta" }, [m.genre, `${m.duration_minutes} min`, m.rating].filter(Boolean).join(" · ")),
              h("p", {}, m.description.length > 160 ? `${m.description.slice(0, 157)}…` : m.description),
            ),
          ),
        ),
        pages > 1 ? h("nav", { class: "toolbar", "aria-label": "Pages" }, page > 1 && link(page - 1, "Previous page"), h("span", {}, `Page ${page} of ${pages}`), page < pages && link(page + 1, "Next page")) : null,
      ].filter(Boolean),
    );
  } catch (e) {
    results.replaceChildren(alertBox(describe(e)));
  }
}

// --- a movie's showtimes by day -------------------------------------------------------------

function day(offset) {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() + offset);
  return d.toISOString().slice(0, 10);
}

async function movieView(id, params, nav) {
  let m;
  try {
    m = await movie(id);
  } catch (e) {
    view(nav, "Movie not found", h("p", {}, describe(e)), h("a", { href: "#/" }, "All movies"));
    return;
  }
  const chosen = params.get("date") || day(0);
  const list = h("div", { "aria-live": "polite" });
  const days = h(
    "ul",
    { class: "days", "aria-label": "Days" },
    [...Array(7).keys()].map((i) => {
      const date = day(i);
      const label = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric", timeZone: "UTC" }).format(new Date(`${date}T00:00:00Z`));
      return h("li", {}, h("button", { type: "button", "aria-pressed": String(date === chosen), onclick: () => (location.hash = `#/movies/${id}?date=${date}`) }, label));
    }),
  );
  view(nav, 
    m.title,
    h("p", { class: "muted" }, [m.genre, `${m.duration_minutes} min`, m.rating, `released ${m.release_date}`].filter(Boolean).join(" · ")),
    h("p", {}, m.description),
    h("h2", {}, "Showtimes"),
    days,
    list,
  );
  try {
    const shows = await all(`/api/movies/showtimes?movie_id=${id}&date=${chosen}`, { auth: false });
    if (!shows.length) {
      list.replaceChildren(h("p", {}, "No showtimes on this day."));
      return;
    }
    const items = await Promise.all(
      shows.map(async (s) => {
        const t = await theater(s.theater_id);
        const time = dateTime(s.start_time, { timeStyle: "short" });
        return h(
          "li",
          {},
          h("a", { class: "button", href: `#/showtimes/${s.id}` }, `${time} in ${t.name}, from ${money(s.price_cents, s.currency)}, ${s.seats_available} seats free`),
        );
      }),
    );
    list.replaceChildren(h("ul", { class: "times" }, items));
  } catch (e) {
    list.replaceChildren(alertBox(describe(e)));
  }
}

// --- the seat map and booking --------------------------------------------------------------

function selectionKey(showtimeId) {
  return `boxoffice.selection.${showtimeId}`;
}

async function showtimeView(id, nav) {
  let show, seats;
  try {
    [show, seats] = await Promise.all([api("GET", `/api/movies/showtimes/${id}`, { auth: false }), api("GET", `/api/movies/showtimes/${id}/seats`, { auth: false })]);
  } catch (e) {
    view(nav, "Showtime not found", h("p", {}, describe(e)), h("a", { href: "#/" }, "All movies"));
    return;
  }
  const [m, t] = await Promise.all([movie(show.movie_id), theater(show.theater_id)]);
  let maxSeats = 10;
  const panel = h("aside", { class: "stack", "aria-label": "Your seats" });
  const errors = alertBox();
  const map = new SeatMap(seats.seats, show.currency, {
    onToggle(seat, on) {
      if (on && map.selected().length >= maxSeats) {
        errors.textContent = `You can book at most ${maxSeats} seats at once.`;
        return false;
      }
      errors.textContent = "";
      queueMicrotask(() => {
        remember();
        renderPanel();
      });
      return true;
    },
  });
  const remember = () => sessionStorage.setItem(selectionKey(id), JSON.stringify(map.selected().map((s) => s.id)));
  // A selection survives signing in and reloading (kept for this tab).
  for (const seatId of JSON.parse(sessionStorage.getItem(selectionKey(id)) || "[]")) map.select(seatId, true);

  const book = async (button) => {
    const chosen = map.selected();
    button.disabled = true;
    errors.textContent = "";
    try {
      const booking = await api("POST", "/api/bookings/book", { body: { showtime_id: id, seat_ids: chosen.map((s) => s.id) } });
      sessionStorage.removeItem(selectionKey(id));
      location.hash = `#/bookings/${booking.id}/pay`;
    } catch (e) {
      button.disabled = false;
      if (e instanceof ApiError && e.kind === "seats-unavailable") {
        const taken = e.problem.unavailable_seat_ids || [];
        map.markTaken(taken);
        remember();
        renderPanel();
        const names = taken.map((s) => map.seats.get(s)).filter(Boolean).map((s) => `${s.row}${s.number}`);
        errors.textContent = `Seat${names.length === 1 ? "" : "s"} ${names.join(", ")} ${names.length === 1 ? "was" : "were"} just taken by someone else. Nothing was booked: choose other seats.`;
      } else if (e instanceof ApiError && e.status === 401) {
        renderPanel();
      } else {
        fail(errors, e);
      }
    }
  };

  function renderPanel() {
    const chosen = map.selected();
    const total = chosen.reduce((sum, s) => sum + s.price_cents, 0);
    const user = session.user;
    panel.replaceChildren(
      h("h2", {}, "Your seats"),
      chosen.length
        ? h("ul", {}, chosen.map((s) => h("li", {}, `Row ${s.row}, seat ${s.number} (${s.type}) · ${money(s.price_cents, show.currency)}`)))
        : h("p", { class: "muted" }, `Choose up to ${maxSeats} seats on the map.`),
      h("p", {}, h("strong", {}, `Total ${money(total, show.currency)}`)),
      errors,
      user
        ? h("button", { type: "button", disabled: !chosen.length, onclick: (e) => book(e.currentTarget) }, chosen.length ? `Book ${chosen.length} seat${chosen.length === 1 ? "" : "s"}` : "Book")
        : authPanel(() => renderPanel()),
    );
  }

  view(nav, 
    `${m.title}, ${dateTime(show.start_time)}`,
    h("p", { class: "muted" }, `${t.name}, ${t.location} · ${show.seats_total} seats`),
    h("div", { class: "booking-layout" }, h("section", { "aria-label": "Seats" }, map.render()), panel),
  );
  renderPanel();

  // Other people's bookings, as they happen.
  const stream = new EventSource(`/api/bookings/showtimes/${id}/seat-states/stream`);
  onLeave(() => stream.close());
  const apply = (states, whole) => {
    const lost = [];
    const ids = whole ? map.seats.keys() : Object.keys(states);
    for (const seatId of ids) if (map.setState(seatId, states[seatId] || "available")) lost.push(map.seats.get(seatId));
    if (lost.length) {
      remember();
      renderPanel();
      errors.textContent = `Someone else just took ${lost.map((s) => `${s.row}${s.number}`).join(", ")}: choose other seats.`;
    }
  };
  stream.addEventListener("snapshot", (e) => {
    const data = JSON.parse(e.data);
    maxSeats = data.max_seats;
    apply(data.seats, true);
    main.dataset.live = "true";
  });
  stream.addEventListener("change", (e) => apply(JSON.parse(e.data).seats, false));
}

// --- the hold, the card form, the outcome ---------------------------------------------------

function countdown(expiresAt, node, expired) {
  const tick = () => {
    const left = Math.max(0, Math.round((new Date(expiresAt) - Date.now()) / 1000));
    node.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    if (left === 0) {
      clearInterval(timer);
      expired();
    }
  };
  const timer = setInterval(tick, 1000);
  onLeave(() => clearInterval(timer));
  tick();
}

async function waitFor(path, done, { every = 500, max = 60 } = {}) {
  for (let i = 0; i < max; i++) {
    const value = await api("GET", path);
    if (done(value)) return value;
    await new Promise((r) => setTimeout(r, every));
  }
  return null;
}

function seatsText(booking) {
  return booking.seats.map((s) => `${s.row}${s.number}`).join(", ");
}

async function payView(id, nav) {
  if (!session.user) return signInView(`#/bookings/${id}/pay`, nav);
  let booking;
  try {
    booking = await api("GET", `/api/bookings/bookings/${id}`);
  } catch (e) {
    view(nav, "Booking not found", h("p", {}, describe(e)));
    return;
  }
  if (booking.status !== "pending") return bookingOutcome(booking, nav);
  const show = await api("GET", `/api/movies/showtimes/${booking.showtime_id}`, { auth: false });
  const m = await movie(show.movie_id);
  const clock = h("span", { class: "countdown" });
  const timerText = h("p", { id: "hold" }, "Your seats are held for ", clock, ". Pay before the time runs out.");
  const errors = alertBox();
  // One key per attempt: a retry of the same attempt (no answer, 503) sends it again, so the
  // card is never charged twice; a new attempt after a decline gets a new key.
  let key = crypto.randomUUID();
  let sentBody = null;
  const input = (name, label, attrs) => h("div", {}, h("label", { for: `card-${name}` }, label), h("input", { id: `card-${name}`, name, required: true, ...attrs }));
  const form = h(
    "form",
    { class: "card stack", novalidate: true, "aria-label": "Card payment" },
    h("h2", {}, "Pay by card"),
    input("number", "Card number", { inputmode: "numeric", autocomplete: "cc-number", maxlength: "19" }),
    h("div", { class: "row" }, input("expiry", "Expiry (MM/YY)", { autocomplete: "cc-exp", placeholder: "MM/YY", maxlength: "5" }), input("cvc", "Security code", { inputmode: "numeric", autocomplete: "cc-csc", maxlength: "4" })),
    errors,
    h("button", { type: "submit" }, `Pay ${money(booking.amount_cents, booking.currency)}`),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = values(form);
    const body = { booking_id: id, card_number: v.number.replace(/\s+/g, ""), card_expiry: v.expiry, card_cvc: v.cvc };
    if (sentBody && JSON.stringify(body) !== sentBody) key = crypto.randomUUID();
    sentBody = JSON.stringify(body);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    errors.textContent = "";
    try {
      const payment = await api("POST", "/api/payments/pay", { body, headers: { "Idempotency-Key": key } });
      if (payment.status === "failed") {
        key = crypto.randomUUID();
        sentBody = null;
        errors.textContent = `Your card was declined (${payment.failure_reason || "declined"}). Nothing was charged: try another card.`;
        button.disabled = false;
        form.querySelector("#card-number").focus();
        return;
      }
      view(nav, "Confirming your booking…", h("p", { role: "status" }, "Your payment was accepted. Waiting for the booking to be confirmed."));
      const confirmed = await waitFor(`/api/bookings/bookings/${id}`, (b) => b.status !== "pending");
      bookingOutcome(confirmed || booking, nav);
    } catch (err) {
      button.disabled = false;
      if (err instanceof ApiError && err.status === 422) {
        sentBody = null;
      }
      fail(errors, err);
    }
  });
  view(nav, 
    "Pay for your seats",
    h("p", {}, `${m.title}, ${dateTime(show.start_time)} · seats ${seatsText(booking)} · ${money(booking.amount_cents, booking.currency)}`),
    timerText,
    form,
    TEST_CARDS
      ? h(
          "section",
          { class: "test-cards card", "aria-label": "Test cards" },
          h("h2", {}, "Demo: test cards"),
          h("p", {}, "No real card is charged here. Any future expiry and any 3-digit code work."),
          h("ul", {}, CARDS.map(([n, what]) => h("li", {}, h("code", {}, n), ` ${what}`))),
        )
      : null,
  );
  countdown(booking.expires_at, clock, () => {
    timerText.textContent = "Your hold ran out and the seats were released.";
    form.querySelector("button[type=submit]").disabled = true;
    form.after(h("p", {}, h("a", { href: `#/showtimes/${booking.showtime_id}` }, "Choose seats again")));
  });
}

function bookingOutcome(booking, nav) {
  const text = {
    confirmed: ["Booking confirmed", "Enjoy the film. A confirmation email is on its way."],
    pending: ["Payment received", "Your booking is being confirmed; it will show in My bookings."],
    expired: ["Hold expired", "The seats were released before payment."],
    cancelled: ["Booking cancelled", "This booking was cancelled."],
  }[booking.status];
  view(nav, text[0], h("p", { class: booking.status === "confirmed" ? "ok" : "" }, text[1]), h("p", {}, `Seats ${seatsText(booking)} · ${money(booking.amount_cents, booking.currency)}`), h("p", {}, h("a", { href: "#/bookings" }, "My bookings")));
}

// --- my bookings, my notifications ---------------------------------------------------------

async function bookingsView(nav) {
  if (!session.user) return signInView("#/bookings", nav);
  const list = h("div", { "aria-live": "polite" });
  view(nav, "My bookings", list);
  let items;
  try {
    items = (await api("GET", "/api/bookings/bookings?per_page=50")).items;
  } catch (e) {
    list.replaceChildren(alertBox(describe(e)));
    return;
  }
  if (!items.length) {
    list.replaceChildren(h("p", {}, "No bookings yet. ", h("a", { href: "#/" }, "Find a movie")));
    return;
  }
  const rows = await Promise.all(items.map((b) => bookingRow(b)));
  list.replaceChildren(h("ul", { class: "grid" }, rows));
}

async function bookingRow(b) {
  const show = await api("GET", `/api/movies/showtimes/${b.showtime_id}`, { auth: false }).catch(() => null);
  const m = show ? await movie(show.movie_id).catch(() => null) : null;
  const status = h("p", { "data-status": b.status }, h("strong", {}, `Status: ${b.status}`));
  const refund = h("p", { "aria-live": "polite" });
  const errors = alertBox();
  const actions = h("div", { class: "toolbar" });
  const started = show && new Date(show.start_time) <= new Date();
  if (b.status === "pending") actions.append(h("a", { class: "button", href: `#/bookings/${b.id}/pay` }, "Pay"));
  if ((b.status === "pending" || b.status === "confirmed") && !started) {
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel booking");
    cancel.addEventListener("click", async () => {
      if (!cancel.dataset.confirm) {
        cancel.dataset.confirm = "1";
        cancel.textContent = b.status === "confirmed" ? "Confirm: cancel and refund" : "Confirm: cancel";
        return;
      }
      cancel.disabled = true;
      try {
        const done = await api("POST", `/api/bookings/bookings/${b.id}/cancel`);
        status.replaceChildren(h("strong", {}, `Status: ${done.status}`));
        status.dataset.status = done.status;
        actions.replaceChildren();
        announce("Booking cancelled");
        if (b.status === "confirmed") followRefund(b.id, refund);
      } catch (e) {
        cancel.disabled = false;
        fail(errors, e);
      }
    });
    actions.append(cancel);
  }
  if (b.status === "cancelled") followRefund(b.id, refund, 1);
  return h(
    "li",
    { class: "card stack", "data-booking": b.id },
    h("h2", {}, m ? m.title : "Showtime"),
    show ? h("p", {}, dateTime(show.start_time)) : null,
    h("p", {}, `Seats ${seatsText(b)} · ${money(b.amount_cents, b.currency)}`),
    status,
    refund,
    errors,
    actions,
  );
}

/** Shows the booking's payment as it is refunded (refunds follow a paid booking's cancel). */
async function followRefund(bookingId, node, tries = 40) {
  for (let i = 0; i < tries && node.isConnected !== false; i++) {
    const payments = (await api("GET", `/api/payments/payments?booking_id=${bookingId}&status=refunded`).catch(() => null))?.items || [];
    if (payments.length) {
      const p = payments[0];
      node.replaceChildren(h("span", { class: "ok", "data-refund": "refunded" }, `Refunded ${money(p.amount_cents, p.currency)} to ${p.card_brand} ····${p.card_last4}`));
      return;
    }
    if (i === 0 && tries > 1) node.textContent = "Refund in progress…";
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function notificationsView(nav) {
  if (!session.user) return signInView("#/notifications", nav);
  const list = h("div");
  view(nav, "Notifications", list);
  try {
    const res = await api("GET", "/api/notifications/notifications?per_page=50");
    list.replaceChildren(
      res.items.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              {},
              h("caption", { class: "visually-hidden" }, "Your notifications, newest first"),
              h("thead", {}, h("tr", {}, ["Subject", "Sent", "Channel", "Status"].map((c) => h("th", { scope: "col" }, c)))),
              h("tbody", {}, res.items.map((n) => h("tr", {}, h("td", {}, n.subject), h("td", {}, dateTime(n.sent_at || n.created_at)), h("td", {}, n.channel), h("td", {}, n.status)))),
            ),
          )
        : h("p", {}, "No notifications yet."),
    );
  } catch (e) {
    list.replaceChildren(alertBox(describe(e)));
  }
}

function signInView(then, nav) {
  view(nav, "Sign in", authPanel(() => (location.hash === then ? route() : (location.hash = then))));
}

// --- routing ------------------------------------------------------------------------------

async function route() {
  const nav = ++navigation;
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean);
  try {
    if (!parts.length) await movieList(params, nav);
    else if (parts[0] === "movies" && parts[1]) await movieView(parts[1], params, nav);
    else if (parts[0] === "showtimes" && parts[1]) await showtimeView(parts[1], nav);
    else if (parts[0] === "bookings" && parts[1] && parts[2] === "pay") await payView(parts[1], nav);
    else if (parts[0] === "bookings") await bookingsView(nav);
    else if (parts[0] === "notifications") await notificationsView(nav);
    else if (parts[0] === "sign-in") signInView("#/", nav);
    else view(nav, "Page not found", h("p", {}, h("a", { href: "#/" }, "All movies")));
  } catch (e) {
    if (e !== STALE) view(nav, "Something went wrong", h("p", { role: "alert" }, describe(e)));
  }
}

window.addEventListener("hashchange", route);
route();
