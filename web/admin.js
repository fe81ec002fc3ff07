// The admin console at /admin: movies, theaters (a row-layout editor with a live seat-map
// preview), showtimes, each showtime's sales, and refunds. Hash routes (#movies, #theaters,
// #showtimes, #sales/<showtime id>, #refunds); everything goes through the public REST API.

import { alertBox, api, all, session, ApiError, h, money, dateTime, announce, describe, values } from "./api.js";

const PER_PAGE = 20;
const SEAT_TYPES = ["standard", "premium", "accessible"];
const MAX_SEATS_PER_ROW = 50;

const view = document.getElementById("view");
const nav = document.getElementById("sections");
const account = document.getElementById("account");
const who = document.getElementById("who");

let ids = 0;
const uid = (prefix) => `${prefix}-${++ids}`;
const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const byId = (items) => new Map(items.map((x) => [x.id, x]));

// ==== The catalog's movies and theaters, loaded once and forgotten after a change.

const cache = { movies: null, theaters: null };

function cached(kind, path) {
  if (!cache[kind]) {
    cache[kind] = all(path).catch((e) => {
      cache[kind] = null;
      throw e;
    });
  }
  return cache[kind];
}
const allMovies = () => cached("movies", "/api/movies/movies");
const allTheaters = () =>
  cached("theaters", "/api/movies/theaters").then((ts) => [...ts].sort((a, b) => a.name.localeCompare(b.name)));
const forget = (kind) => (cache[kind] = null);

// ==== Forms: labelled fields, errors next to their fields, problems in an alert.

function heading(text) {
  return h("h1", { tabindex: "-1" }, text);
}

/** A labelled control, with an optional hint the control is described by. */
function field(label, control, hint) {
  if (!control.id) control.id = uid((control.getAttribute("name") || "field").replace(/\W+/g, "-"));
  const box = h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  if (hint) {
    const id = `${control.id}-hint`;
    box.append(h("p", { class: "hint muted", id }, hint));
    control.setAttribute("aria-describedby", id);
  }
  return box;
}

const alertOf = (form) => form.querySelector('[role="alert"]');

function setFieldError(control, message) {
  const id = `${control.id}-error`;
  const existing = document.getElementById(id);
  if (existing) {
    existing.append(` ${message}`);
    return;
  }
  (control.closest(".field") || control.parentElement).append(h("p", { class: "field-error", id }, message));
  if (control.dataset.describedby === undefined) control.dataset.describedby = control.getAttribute("aria-describedby") || "";
  control.setAttribute("aria-invalid", "true");
  control.setAttribute("aria-describedby", `${control.dataset.describedby} ${id}`.trim());
}

function clearErrors(form) {
  for (const p of form.querySelectorAll(".field-error")) p.remove();
  for (const c of form.querySelectorAll('[aria-invalid="true"]')) {
    c.removeAttribute("aria-invalid");
    if (c.dataset.describedby) c.setAttribute("aria-describedby", c.dataset.describedby);
    else c.removeAttribute("aria-describedby");
    delete c.dataset.describedby;
  }
  alertOf(form)?.replaceChildren();
}

/**
 * Shows `[{field, message}]` next to the form's controls of those names (`rename` maps an API
 * field to a control's name); messages of no control go to the form's alert. Focuses the first.
 */
function showErrors(form, errors, { rename = {} } = {}) {
  clearErrors(form);
  const loose = [];
  let first = null;
  for (const { field: name, message } of errors) {
    const control = form.elements.namedItem(rename[name] ?? name);
    if (control instanceof HTMLElement) {
      setFieldError(control, message);
      first ??= control;
    } else {
      loose.push(`${name.replaceAll("_", " ")}: ${message}`);
    }
  }
  const marked = errors.length - loose.length;
  const intro = marked === 0 ? [] : [marked === 1 ? "One field needs correcting." : `${marked} fields need correcting.`];
  alertOf(form).textContent = [...intro, ...loose].join(" ");
  first?.focus();
}

/** A failed request: a 422's fields next to their controls, anything else in the alert. */
function showProblem(form, error, options) {
  if (error instanceof ApiError && error.status === 422 && error.problem.errors?.length) {
    showErrors(form, error.problem.errors, options);
    return;
  }
  clearErrors(form);
  alertOf(form).textContent = describe(error);
}

/** Runs `fn` for a form's submit, ignoring submits while one is under way. */
function onSubmit(form, fn) {
  let pending = false;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (pending) return;
    pending = true;
    form.setAttribute("aria-busy", "true");
    try {
      await fn();
    } finally {
      pending = false;
      form.removeAttribute("aria-busy");
    }
  });
}

/** A section card titled by an h2. */
function section(title, ...children) {
  const h2 = h("h2", { id: uid("section"), tabindex: "-1" }, title);
  const node = h("section", { class: "card stack", "aria-labelledby": h2.id }, h2, ...children);
  node.heading = h2;
  return node;
}

/** A table in a scrolling wrapper (focusable when nothing in it is, so keyboards can scroll it). */
function table(caption, headers, rows, foot) {
  const interactive = rows.some((r) => r.querySelector("a, button, input, select"));
  const scroll = interactive ? {} : { role: "region", "aria-label": caption, tabindex: "0" };
  return h("div", { class: "table-wrap", ...scroll },
    h("table", {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
      foot ? h("tfoot", {}, foot) : null));
}

function pager(res, go, noun) {
  const pages = Math.max(1, Math.ceil(res.total / res.per_page));
  const count = plural(res.total, noun);
  if (res.total === 0) return "";
  if (pages <= 1) return h("p", { class: "muted" }, count);
  const to = (page, text, disabled) => h("button", { type: "button", class: "secondary", disabled, onclick: () => go(page) }, text);
  return h("nav", { class: "pager", "aria-label": `${cap(noun)} pages` },
    to(res.page - 1, "Previous page", res.page <= 1),
    h("span", {}, `Page ${res.page} of ${pages} · ${count}`),
    to(res.page + 1, "Next page", res.page >= pages));
}

/** A table row: a row header, then cells. */
const tr = (head, ...cells) => h("tr", {}, h("th", { scope: "row" }, head), cells.map((c) => h("td", {}, c)));

/** A pager's page turn: loads page `p`, then focuses the list's heading (the old buttons are gone). */
const turner = (set, load, section) => (p) => {
  set(p);
  load().then(() => section.heading.focus());
};

/**
 * A button that asks before it acts: the first click turns it into `confirmText` (with a
 * Cancel beside it), the second runs `action`.
 */
function confirmButton({ label, name, confirmText, confirmName, action, secondary = false }) {
  const button = h("button", { type: "button", "aria-label": name, class: secondary ? "secondary" : null }, label);
  const cancel = h("button", { type: "button", class: "secondary", hidden: true }, "Cancel");
  let armed = false;
  let running = false;
  const reset = () => {
    armed = false;
    button.textContent = label;
    button.classList.toggle("secondary", secondary);
    if (name) button.setAttribute("aria-label", name);
    cancel.hidden = true;
  };
  button.addEventListener("click", async () => {
    if (running) return;
    if (!armed) {
      armed = true;
      button.textContent = confirmText;
      button.classList.remove("secondary");
      if (confirmName) button.setAttribute("aria-label", confirmName);
      else button.removeAttribute("aria-label");
      cancel.hidden = false;
      announce(`${confirmName || confirmText}? Press the button again to go ahead, or Cancel.`);
      return;
    }
    running = true;
    button.setAttribute("aria-disabled", "true");
    try {
      await action();
    } finally {
      running = false;
      button.removeAttribute("aria-disabled");
      reset();
    }
  });
  cancel.addEventListener("click", () => {
    reset();
    button.focus();
  });
  return h("span", { class: "actions" }, button, cancel);
}

function fillSelect(select, placeholder, options, keep = select.value) {
  select.replaceChildren(
    h("option", { value: "" }, placeholder),
    ...options.map(([value, text]) => h("option", { value, selected: value === keep }, text)),
  );
}

// ==== Seat maps: the layout preview and an existing theater's layout, drawn the same way.

/** `rows`: `[{name, seats: [{number, type}]}]`; the seats are text, not controls. */
function seatPreview(rows, caption) {
  const total = rows.reduce((n, r) => n + r.seats.length, 0);
  const counts = Object.fromEntries(SEAT_TYPES.map((t) => [t, 0]));
  for (const r of rows) for (const s of r.seats) counts[s.type] += 1;
  const text = `${caption}: ${plural(total, "seat")} in ${plural(rows.length, "row")}`;
  const hidden = { "aria-hidden": "true" };
  return h("figure", { class: "preview" },
    h("figcaption", {}, text),
    h("ul", { class: "legend" },
      SEAT_TYPES.map((t) => h("li", {}, h("span", { class: `seat ${t}`, ...hidden }), `${cap(t)}: ${counts[t]}`))),
    // Focusable, so that a keyboard can scroll a wide map.
    h("div", { class: "seatmap", role: "group", "aria-label": `${caption}: seat map`, tabindex: "0" },
      h("div", { class: "screen", ...hidden }, "Screen"),
      rows.map((r) => h("div", { class: "seat-row" },
        h("span", { class: "row-name", ...hidden }, r.name),
        h("span", { class: "visually-hidden" }, rowSummary(r)),
        r.seats.map((s) => h("span", { class: `seat ${s.type}`, ...hidden }, String(s.number)))))));
}

function rowSummary(r) {
  const counts = new Map();
  for (const s of r.seats) counts.set(s.type, (counts.get(s.type) || 0) + 1);
  const parts = [...counts].map(([t, n]) => `${n} ${t}`);
  return `Row ${r.name}: ${parts.length ? `${parts.join(", ")} ${r.seats.length === 1 ? "seat" : "seats"}` : "no seats"}.`;
}

function theaterRows(theater) {
  const rows = new Map();
  for (const s of theater.seats) {
    if (!rows.has(s.row)) rows.set(s.row, []);
    rows.get(s.row).push({ number: s.number, type: s.type });
  }
  return [...rows].map(([name, seats]) => ({ name, seats: seats.sort((a, b) => a.number - b.number) }));
}

// ==== Movies

function moviesView(root) {
  const state = { q: "", genre: "", page: 1, editing: null };
  const f = {
    title: h("input", { name: "title", required: true, maxlength: "200", autocomplete: "off" }),
    genre: h("input", { name: "genre", required: true, maxlength: "50", autocomplete: "off" }),
    duration: h("input", { name: "duration_minutes", type: "number", min: "1", max: "1440", step: "1", required: true }),
    release: h("input", { name: "release_date", type: "date", required: true }),
    rating: h("input", { name: "rating", maxlength: "16", autocomplete: "off" }),
    poster: h("input", { name: "poster_url", type: "url", autocomplete: "off" }),
    description: h("textarea", { name: "description", rows: "3", maxlength: "10000" }),
  };
  const submit = h("button", { type: "submit" }, "Add movie");
  const cancelEdit = h("button", { type: "button", class: "secondary", hidden: true }, "Cancel editing");
  const done = h("p", { class: "ok" });
  const form = h("form", { class: "stack", novalidate: true },
    h("div", { class: "row" }, field("Title", f.title), field("Genre", f.genre, "For example Drama or Comedy.")),
    h("div", { class: "row" }, field("Duration (minutes)", f.duration), field("Release date", f.release),
      field("Rating (optional)", f.rating, "For example PG-13.")),
    field("Poster URL (optional)", f.poster, "An http(s) address."),
    field("Description", f.description),
    alertBox(),
    h("div", { class: "actions" }, submit, cancelEdit));
  const editor = section("Add a movie", form, done);

  function stopEditing() {
    state.editing = null;
    form.reset();
    clearErrors(form);
    editor.heading.textContent = "Add a movie";
    submit.textContent = "Add movie";
    cancelEdit.hidden = true;
  }
  cancelEdit.addEventListener("click", () => {
    stopEditing();
    announce("Editing cancelled.");
    f.title.focus();
  });

  function startEditing(movie) {
    state.editing = movie;
    clearErrors(form);
    done.textContent = "";
    f.title.value = movie.title;
    f.genre.value = movie.genre;
    f.duration.value = String(movie.duration_minutes);
    f.release.value = movie.release_date;
    f.rating.value = movie.rating || "";
    f.poster.value = movie.poster_url || "";
    f.description.value = movie.description || "";
    editor.heading.textContent = `Edit “${movie.title}”`;
    submit.textContent = "Save changes";
    cancelEdit.hidden = false;
    f.title.focus();
  }

  onSubmit(form, async () => {
    done.textContent = "";
    const v = values(form);
    const problems = [];
    if (!v.title.trim()) problems.push({ field: "title", message: "Enter a title." });
    if (!v.genre.trim()) problems.push({ field: "genre", message: "Enter a genre." });
    if (!/^\d+$/.test(v.duration_minutes.trim())) {
      problems.push({ field: "duration_minutes", message: "Enter a whole number of minutes." });
    }
    if (!v.release_date) problems.push({ field: "release_date", message: "Enter the release date." });
    if (problems.length) return showErrors(form, problems);
    const body = {
      title: v.title.trim(),
      description: v.description.trim(),
      duration_minutes: Number(v.duration_minutes.trim()),
      genre: v.genre.trim(),
      release_date: v.release_date,
      rating: v.rating.trim() || null,
      poster_url: v.poster_url.trim() || null,
    };
    const editing = state.editing;
    try {
      const movie = editing
        ? await api("PUT", `/api/movies/movies/${editing.id}`, { body })
        : await api("POST", "/api/movies/movies", { body });
      forget("movies");
      stopEditing();
      const msg = editing ? `Saved “${movie.title}”.` : `Added “${movie.title}”.`;
      done.textContent = msg;
      announce(msg);
      await load();
    } catch (e) {
      showProblem(form, e);
    }
  });

  // The catalog, searchable.
  const q = h("input", { type: "search", name: "q", autocomplete: "off" });
  const genre = h("input", { name: "genre", autocomplete: "off" });
  const search = h("form", { class: "toolbar", role: "search", "aria-label": "Movies" },
    field("Search titles", q),
    field("Filter by genre", genre),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Search"),
      h("button", { type: "button", class: "secondary", onclick: () => clearSearch() }, "Clear")));
  const listAlert = alertBox();
  const results = h("div", { class: "stack" });
  const catalog = section("Catalog", search, listAlert, results);

  search.addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.q = q.value.trim();
    state.genre = genre.value.trim();
    state.page = 1;
    load(true);
  });
  function clearSearch() {
    q.value = "";
    genre.value = "";
    state.q = "";
    state.genre = "";
    state.page = 1;
    load(true);
  }

  function movieRow(m) {
    const remove = confirmButton({
      label: "Remove",
      name: `Remove ${m.title}`,
      confirmText: "Confirm removal",
      confirmName: `Confirm removal of ${m.title}`,
      secondary: true,
      action: async () => {
        try {
          await api("DELETE", `/api/movies/movies/${m.id}`);
          forget("movies");
          if (state.editing?.id === m.id) stopEditing();
          announce(`Removed “${m.title}”.`);
          await load();
          catalog.heading.focus();
        } catch (e) {
          listAlert.textContent = `Could not remove “${m.title}”: ${describe(e)}`;
        }
      },
    });
    const edit = h("button", { type: "button", class: "secondary", "aria-label": `Edit ${m.title}`, onclick: () => startEditing(m) }, "Edit");
    const released = dateTime(m.release_date, { dateStyle: "medium", timeZone: "UTC" });
    return tr(m.title, m.genre, `${m.duration_minutes} min`, released, m.rating || "—", h("div", { class: "actions" }, edit, remove));
  }

  async function load(say = false) {
    const params = new URLSearchParams({ page: state.page, per_page: PER_PAGE });
    if (state.q) params.set("q", state.q);
    if (state.genre) params.set("genre", state.genre);
    listAlert.textContent = "";
    try {
      const res = await api("GET", `/api/movies/movies?${params}`);
      if (res.items.length === 0 && state.page > 1) {
        state.page -= 1;
        return load(say);
      }
      results.replaceChildren(
        res.items.length
          ? table("Movies", ["Title", "Genre", "Length", "Released", "Rating", "Actions"], res.items.map(movieRow))
          : h("p", { class: "muted" }, state.q || state.genre ? "No movie matches." : "No movies yet."),
        pager(res, turner((p) => (state.page = p), load, catalog), "movie"));
      if (say) announce(`${plural(res.total, "movie")} found.`);
    } catch (e) {
      listAlert.textContent = `Could not list movies: ${describe(e)}`;
    }
  }

  root.append(heading("Movies"), editor, catalog);
  load();
}

// ==== Theaters

function nextRowName(name) {
  const s = (name || "").trim().toUpperCase();
  if (/^[A-Y]$/.test(s)) return String.fromCharCode(s.charCodeAt(0) + 1);
  if (/^\d+$/.test(s)) return String(Number(s) + 1);
  return s ? "" : "A";
}

function seatCount(value) {
  const n = Number(String(value).trim());
  return Number.isInteger(n) && n > 0 && String(value).trim() !== "" ? Math.min(n, MAX_SEATS_PER_ROW) : 0;
}

function theatersView(root) {
  const fresh = () => [{ row: "A", seats: "10", type: "standard" }];
  let rows = fresh();
  const name = h("input", { name: "name", required: true, maxlength: "200", autocomplete: "off" });
  const place = h("input", { name: "location", required: true, maxlength: "200", autocomplete: "off" });
  const list = h("ol", { class: "layout-rows" });
  const addRow = h("button", { type: "button", class: "secondary" }, "Add row");
  const previewBox = h("div");
  const done = h("p", { class: "ok" });
  const hintId = uid("layout-hint");
  const form = h("form", { class: "stack", novalidate: true },
    h("div", { class: "row" }, field("Theater name", name), field("Location", place, "For example Downtown, 2nd floor.")),
    h("fieldset", { "aria-describedby": hintId },
      h("legend", {}, "Seat layout"),
      h("p", { class: "hint muted", id: hintId },
        `One line per row, from the screen backwards; seats are numbered from 1, at most ${MAX_SEATS_PER_ROW} a row.`),
      list,
      h("div", { class: "actions" }, addRow)),
    previewBox,
    alertBox(),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Add theater")));

  function draw() {
    const spec = rows.map((r) => ({
      name: r.row.trim().toUpperCase() || "?",
      seats: Array.from({ length: seatCount(r.seats) }, (_, k) => ({ number: k + 1, type: r.type })),
    }));
    previewBox.replaceChildren(seatPreview(spec, "Preview"));
  }

  function rowItem(r, i) {
    const n = i + 1;
    // Each control keeps its row's value and redraws the preview on every input.
    const bind = (tag, key, label, attrs, ...options) => h(tag, {
      id: `layout-${i}-${key}`, name: `layout[${i}].${key}`, "aria-label": `Row ${n} ${label}`, ...attrs,
      oninput: (e) => {
        r[key] = e.target.value;
        draw();
      },
    }, ...options);
    const box = (label, control) => h("div", { class: "field" }, h("label", { for: control.id }, label), control);
    const act = (what, label, text, disabled, fn) =>
      h("button", { type: "button", class: "secondary", "data-act": what, "aria-label": label, disabled, onclick: fn }, text);
    return h("li", {},
      h("span", { class: "row-label", "aria-hidden": "true" }, `Row ${n}`),
      box("Name", bind("input", "row", "name", { maxlength: "8", autocomplete: "off", value: r.row })),
      box("Seats", bind("input", "seats", "seats", { type: "number", min: "1", max: String(MAX_SEATS_PER_ROW), step: "1", value: r.seats })),
      box("Type", bind("select", "type", "seat type", {}, SEAT_TYPES.map((t) => h("option", { value: t, selected: t === r.type }, cap(t))))),
      h("div", { class: "actions" },
        act("up", `Move row ${n} up`, "Up", i === 0, () => move(i, -1)),
        act("down", `Move row ${n} down`, "Down", i === rows.length - 1, () => move(i, 1)),
        act("remove", `Remove row ${n}`, "Remove", rows.length === 1, () => removeRow(i))));
  }

  function renderRows() {
    clearErrors(form);
    list.replaceChildren(...rows.map(rowItem));
    draw();
  }

  function move(i, d) {
    const j = i + d;
    [rows[i], rows[j]] = [rows[j], rows[i]];
    renderRows();
    const li = list.children[j];
    const same = li.querySelector(`[data-act="${d < 0 ? "up" : "down"}"]`);
    (same.disabled ? li.querySelector(`[data-act="${d < 0 ? "down" : "up"}"]`) : same).focus();
    announce(`Row ${rows[j].row || "without a name"} is now row ${j + 1} of ${rows.length}.`);
  }

  function removeRow(i) {
    const [gone] = rows.splice(i, 1);
    renderRows();
    list.children[Math.min(i, rows.length - 1)].querySelector("input").focus();
    announce(`Row ${gone.row || "without a name"} removed; ${plural(rows.length, "row")} left.`);
  }

  addRow.addEventListener("click", () => {
    const last = rows.at(-1);
    rows.push({ row: nextRowName(last?.row), seats: last?.seats || "10", type: "standard" });
    renderRows();
    list.lastElementChild.querySelector("input").focus();
    announce(`Row ${rows.length} added.`);
  });

  onSubmit(form, async () => {
    done.textContent = "";
    const problems = [];
    if (!name.value.trim()) problems.push({ field: "name", message: "Enter the theater's name." });
    if (!place.value.trim()) problems.push({ field: "location", message: "Enter where the theater is." });
    rows.forEach((r, i) => {
      if (!r.row.trim()) problems.push({ field: `layout[${i}].row`, message: "Enter a row name, for example A." });
      if (!/^\d+$/.test(String(r.seats).trim())) {
        problems.push({ field: `layout[${i}].seats`, message: "Enter a whole number of seats." });
      }
    });
    if (problems.length) return showErrors(form, problems);
    const body = {
      name: name.value.trim(),
      location: place.value.trim(),
      layout: rows.map((r) => ({ row: r.row.trim(), seats: Number(String(r.seats).trim()), type: r.type })),
    };
    try {
      const theater = await api("POST", "/api/movies/theaters", { body });
      forget("theaters");
      form.reset();
      rows = fresh();
      renderRows();
      const msg = `Added ${theater.name} with ${plural(theater.seats.length, "seat")}.`;
      done.textContent = msg;
      announce(msg);
      showLayout(theater, false);
      await load();
    } catch (e) {
      showProblem(form, e);
    }
  });

  const listAlert = alertBox();
  const results = h("div", { class: "stack" });
  const layoutBox = h("div");
  const theatersSection = section("All theaters", listAlert, results, layoutBox);
  let page = 1;

  function showLayout(theater, focus = true) {
    const title = h("h3", { tabindex: "-1" }, `Layout of ${theater.name}`);
    layoutBox.replaceChildren(
      title,
      h("p", { class: "muted" }, theater.location),
      seatPreview(theaterRows(theater), theater.name),
    );
    if (focus) title.focus();
  }

  async function load() {
    listAlert.textContent = "";
    try {
      const res = await api("GET", `/api/movies/theaters?page=${page}&per_page=${PER_PAGE}`);
      const rowsOf = (t) => new Set(t.seats.map((s) => s.row)).size;
      const show = (t) =>
        h("button", { type: "button", class: "secondary", "aria-label": `Show layout of ${t.name}`, onclick: () => showLayout(t) }, "Show layout");
      results.replaceChildren(
        res.items.length
          ? table("Theaters", ["Name", "Location", "Seats", "Rows", "Layout"],
            res.items.map((t) => tr(t.name, t.location, String(t.seats.length), String(rowsOf(t)), show(t))))
          : h("p", { class: "muted" }, "No theaters yet."),
        pager(res, turner((p) => (page = p), load, theatersSection), "theater"));
    } catch (e) {
      listAlert.textContent = `Could not list theaters: ${describe(e)}`;
    }
  }

  root.append(heading("Theaters"), section("Add a theater", form, done), theatersSection);
  renderRows();
  load();
}

// ==== Showtimes

/** A `datetime-local` value (local time) as an RFC 3339 UTC string, or null. */
function localToUtc(value) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value || "")) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** "12.50" (or "$12.50", "12", "12,5") as 1250 cents, or null. */
function parseCents(text) {
  const m = /^\s*\$?\s*(\d{1,9})(?:[.,](\d{1,2}))?\s*$/.exec(text || "");
  return m ? Number(m[1]) * 100 + Number((m[2] || "0").padEnd(2, "0")) : null;
}

const todayUtc = () => new Date().toISOString().slice(0, 10);

function showtimesView(root) {
  const movieSel = h("select", { name: "movie_id", required: true }, h("option", { value: "" }, "Loading movies…"));
  const theaterSel = h("select", { name: "theater_id", required: true }, h("option", { value: "" }, "Loading theaters…"));
  const start = h("input", { type: "datetime-local", name: "start_time", required: true });
  const price = h("input", { name: "price", inputmode: "decimal", autocomplete: "off", required: true });
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "your time zone";
  const done = h("p", { class: "ok" });
  const form = h("form", { class: "stack", novalidate: true },
    h("div", { class: "row" }, field("Movie", movieSel), field("Theater", theaterSel)),
    h("div", { class: "row" }, field("Starts at (your local time)", start, zone === "UTC" ? "In UTC." : `In ${zone}; saved in UTC.`),
      field("Price (USD)", price, "In dollars, for example 12.50. Premium and accessible seats cost a multiple of it.")),
    alertBox(),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Schedule showtime")));

  // The list of a day's showtimes.
  const day = h("input", { type: "date", name: "date", value: todayUtc() });
  const onlyTheater = h("select", { name: "theater_id" }, h("option", { value: "" }, "All theaters"));
  const onlyMovie = h("select", { name: "movie_id" }, h("option", { value: "" }, "All movies"));
  const filter = h("form", { class: "toolbar", "aria-label": "Find showtimes" },
    field("Day (UTC)", day), field("Filter by theater", onlyTheater), field("Filter by movie", onlyMovie),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Show showtimes")));
  const listAlert = alertBox();
  const results = h("div", { class: "stack" });
  const listSection = section("Showtimes by day", filter, listAlert, results);
  let page = 1;

  const names = async () => {
    const [ms, ts] = await Promise.all([allMovies().catch(() => []), allTheaters().catch(() => [])]);
    return { movies: byId(ms), theaters: byId(ts) };
  };

  Promise.all([allMovies(), allTheaters()])
    .then(([ms, ts]) => {
      const movieOptions = ms.map((m) => [m.id, m.title]);
      const theaterOptions = ts.map((t) => [t.id, t.name]);
      fillSelect(movieSel, "Choose a movie", movieOptions);
      fillSelect(theaterSel, "Choose a theater", theaterOptions);
      fillSelect(onlyMovie, "All movies", movieOptions);
      fillSelect(onlyTheater, "All theaters", theaterOptions);
    })
    .catch((e) => {
      alertOf(form).textContent = `Could not load the movies and theaters: ${describe(e)}`;
    });

  async function showOverlap(e) {
    clearErrors(form);
    const other = e.problem.conflicting_showtime_id;
    let detail = describe(e);
    if (other) {
      try {
        const [s, n] = await Promise.all([api("GET", `/api/movies/showtimes/${other}`), names()]);
        const title = n.movies.get(s.movie_id)?.title || "another movie";
        detail = `It would overlap ${title} at ${dateTime(s.start_time)} (a showtime lasts its movie plus the cleaning gap). Choose another time or theater.`;
      } catch {
        // The problem's own detail is said then.
      }
    }
    setFieldError(start, "Overlaps another showtime in this theater.");
    alertOf(form).replaceChildren(
      h("strong", {}, "This showtime overlaps another one in the same theater. "),
      detail,
      ...(other ? [" ", h("a", { href: `#sales/${other}` }, "See the other showtime")] : []),
    );
    start.focus();
  }

  onSubmit(form, async () => {
    done.textContent = "";
    const problems = [];
    if (!movieSel.value) problems.push({ field: "movie_id", message: "Choose a movie." });
    if (!theaterSel.value) problems.push({ field: "theater_id", message: "Choose a theater." });
    const startTime = localToUtc(start.value);
    if (!startTime) problems.push({ field: "start_time", message: "Enter the date and time it starts." });
    const cents = parseCents(price.value);
    if (cents === null) problems.push({ field: "price", message: "Enter a price in dollars, like 12.50." });
    if (problems.length) return showErrors(form, problems);
    const body = { movie_id: movieSel.value, theater_id: theaterSel.value, start_time: startTime, price_cents: cents, currency: "USD" };
    try {
      const s = await api("POST", "/api/movies/showtimes", { body });
      clearErrors(form);
      const n = await names();
      const msg = `Scheduled ${n.movies.get(s.movie_id)?.title || "the movie"} in ${n.theaters.get(s.theater_id)?.name || "the theater"} at ${dateTime(s.start_time)} for ${money(s.price_cents, s.currency)}.`;
      done.textContent = msg;
      announce(msg);
      day.value = s.start_time.slice(0, 10);
      page = 1;
      await load();
    } catch (e) {
      if (e instanceof ApiError && e.kind === "showtime-overlap") await showOverlap(e);
      else showProblem(form, e, { rename: { price_cents: "price", currency: "price" } });
    }
  });

  filter.addEventListener("submit", (ev) => {
    ev.preventDefault();
    page = 1;
    load(true);
  });

  async function load(say = false) {
    listAlert.textContent = "";
    const params = new URLSearchParams({ page, per_page: PER_PAGE });
    if (day.value) params.set("date", day.value);
    if (onlyTheater.value) params.set("theater_id", onlyTheater.value);
    if (onlyMovie.value) params.set("movie_id", onlyMovie.value);
    try {
      const [res, n] = await Promise.all([api("GET", `/api/movies/showtimes?${params}`), names()]);
      const caption = day.value ? `Showtimes on ${day.value} (UTC)` : "Showtimes to come";
      const rows = res.items.map((s) => {
        const title = n.movies.get(s.movie_id)?.title || s.movie_id;
        const when = dateTime(s.start_time);
        const sales = h("a", { href: `#sales/${s.id}`, "aria-label": `Sales of ${title} at ${when}` }, "Sales");
        const theater = n.theaters.get(s.theater_id)?.name || s.theater_id;
        return tr(when, title, theater, money(s.price_cents, s.currency), `${s.seats_available} of ${s.seats_total}`, sales);
      });
      results.replaceChildren(
        rows.length
          ? table(caption, ["Starts", "Movie", "Theater", "Price", "Seats left", "Sales"], rows)
          : h("p", { class: "muted" }, "No showtimes that day."),
        pager(res, turner((p) => (page = p), load, listSection), "showtime"));
      if (say) announce(`${plural(res.total, "showtime")} found.`);
    } catch (e) {
      listAlert.textContent = `Could not list showtimes: ${describe(e)}`;
    }
  }

  root.append(heading("Showtimes"), section("Schedule a showtime", form, done), listSection);
  load();
}

// ==== Sales of a showtime

function salesView(root, id) {
  const select = h("select", { name: "showtime", required: true }, h("option", { value: "" }, "Loading showtimes…"));
  const choice = field("Showtime", select);
  choice.classList.add("wide");
  const picker = h("form", { class: "toolbar", novalidate: true }, choice, h("div", { class: "actions" }, h("button", { type: "submit" }, "Show sales")), alertBox());
  picker.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!select.value) return showErrors(picker, [{ field: "showtime", message: "Choose a showtime." }]);
    if (select.value === id) return refresh(true);
    location.hash = `#sales/${select.value}`;
  });

  (async () => {
    try {
      const [shows, ms, ts] = await Promise.all([all("/api/movies/showtimes"), allMovies(), allTheaters()]);
      const movies = byId(ms);
      const theaters = byId(ts);
      const label = (s) =>
        `${dateTime(s.start_time)} — ${movies.get(s.movie_id)?.title || "?"} — ${theaters.get(s.theater_id)?.name || "?"}`;
      if (id && !shows.some((s) => s.id === id)) {
        const s = await api("GET", `/api/movies/showtimes/${id}`).catch(() => null);
        if (s) shows.unshift(s);
      }
      fillSelect(select, "Choose a showtime", shows.map((s) => [s.id, label(s)]), id || "");
    } catch (e) {
      alertOf(picker).textContent = `Could not list showtimes: ${describe(e)}`;
    }
  })();

  root.append(heading("Sales"), section("Choose a showtime", picker));
  if (!id) {
    root.append(h("p", { class: "muted" }, "Choose a showtime to see what it sold."));
    return;
  }

  const title = h("h2", { id: uid("sales") }, "Loading…");
  const meta = h("p", { class: "muted" });
  const stats = {};
  const stat = (key, label) => {
    stats[key] = h("dd", { id: `stat-${key}`, "data-stat": key }, "…");
    return h("div", {}, h("dt", {}, label), stats[key]);
  };
  const refreshButton = h("button", { type: "button", class: "secondary", onclick: () => refresh(true) }, "Refresh");
  const updated = h("p", { class: "muted" });
  const alert = alertBox();
  const breakdown = h("div");
  root.append(h("section", { class: "card stack", "aria-labelledby": title.id },
    h("div", { class: "section-head" }, title, refreshButton),
    meta,
    alert,
    h("dl", { class: "stats" }, stat("sold", "Sold"), stat("held", "Held"), stat("free", "Free"), stat("revenue", "Revenue")),
    updated,
    h("h3", {}, "By seat type"),
    breakdown));

  let busy = false;
  async function refresh(manual = false) {
    if (busy) return;
    busy = true;
    refreshButton.setAttribute("aria-disabled", "true");
    try {
      const path = `/api/movies/showtimes/${id}`;
      const [s, map, ms, ts] = await Promise.all([
        api("GET", path), api("GET", `${path}/seats`), allMovies().catch(() => []), allTheaters().catch(() => [])]);
      const movie = ms.find((m) => m.id === s.movie_id);
      const theater = ts.find((t) => t.id === s.theater_id);
      title.textContent = `${movie?.title || "Showtime"} in ${theater?.name || "its theater"}`;
      meta.textContent = `${dateTime(s.start_time)} · base price ${money(s.price_cents, s.currency)} · ${plural(map.seats.length, "seat")}`;
      const blank = () => ({ seats: 0, booked: 0, held: 0, available: 0, revenue: 0 });
      const total = blank();
      const byType = new Map(SEAT_TYPES.map((t) => [t, blank()]));
      for (const seat of map.seats) {
        if (!byType.has(seat.type)) byType.set(seat.type, blank());
        for (const bucket of [total, byType.get(seat.type)]) {
          bucket.seats += 1;
          bucket[seat.status] = (bucket[seat.status] || 0) + 1;
          if (seat.status === "booked") bucket.revenue += seat.price_cents;
        }
      }
      const cur = s.currency;
      stats.sold.textContent = String(total.booked);
      stats.held.textContent = String(total.held);
      stats.free.textContent = String(total.available);
      stats.revenue.textContent = money(total.revenue, cur);
      const line = (label, b) => tr(label, ...[b.seats, b.booked, b.held, b.available].map(String), money(b.revenue, cur));
      const typed = [...byType].filter(([, b]) => b.seats > 0);
      breakdown.replaceChildren(table("Sales by seat type", ["Seat type", "Seats", "Sold", "Held", "Free", "Revenue"],
        typed.map(([t, b]) => line(cap(t), b)), line("All seats", total)));
      alert.textContent = "";
      updated.textContent = `Updated at ${dateTime(new Date().toISOString(), { timeStyle: "medium" })}.`;
      const sum = `${total.booked} sold, ${total.held} held, ${total.available} free, revenue ${money(total.revenue, cur)}`;
      if (manual) announce(`Sales updated: ${sum}.`);
    } catch (e) {
      alert.textContent = `Could not load the sales: ${describe(e)}`;
    } finally {
      busy = false;
      refreshButton.removeAttribute("aria-disabled");
    }
  }
  refresh();
}

// ==== Refunds

const card = (p) => `${cap(p.card_brand || "card")} ending ${p.card_last4}`;

function refundsView(root) {
  const outcome = h("p", { class: "ok", tabindex: "-1" });
  const paymentId = h("input", { name: "id", autocomplete: "off", spellcheck: "false", autocapitalize: "none" });
  const lookup = h(
    "form",
    { class: "toolbar", novalidate: true, "aria-label": "Look up a payment" },
    field("Payment id", paymentId),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Look up")),
  );
  const lookupAlert = alertBox();
  lookup.append(lookupAlert);
  const found = h("div");

  const listAlert = alertBox();
  const results = h("div", { class: "stack" });
  const listSection = section("Completed payments", h("p", { class: "muted" }, "Every customer's, newest first."), listAlert, results);
  let page = 1;

  async function refund(p, alert) {
    try {
      const r = await api("POST", `/api/payments/payments/${p.id}/refund`);
      const msg = `Refunded ${money(r.amount_cents, r.currency)} to ${card(r)}: payment ${r.id} is now ${r.status}.`;
      outcome.textContent = msg;
      announce(msg);
      showPayment(r);
      await load();
      outcome.focus();
    } catch (e) {
      alert.textContent = `Could not refund payment ${p.id}: ${describe(e)}`;
    }
  }

  const refundButton = (p, alert) =>
    confirmButton({
      label: "Refund",
      name: `Refund ${money(p.amount_cents, p.currency)}, payment ${p.id}`,
      confirmText: `Confirm refund of ${money(p.amount_cents, p.currency)}`,
      action: () => refund(p, alert),
    });

  function showPayment(p) {
    const title = h("h3", { id: uid("payment") }, `Payment ${p.id}`);
    const alert = alertBox();
    const rows = [
      ["Status", h("strong", { id: "payment-status" }, cap(p.status))],
      ["Amount", money(p.amount_cents, p.currency)],
      ["Card", card(p)],
      ["Paid at", dateTime(p.created_at)],
      ["Booking", h("code", { class: "id" }, p.booking_id)],
      ["Customer", h("code", { class: "id" }, p.user_id)],
    ];
    if (p.failure_reason) rows.push(["Declined because", p.failure_reason.replaceAll("_", " ")]);
    const txns = (p.transactions || []).map((t) =>
      h("li", {}, `${cap(t.type)} of ${money(t.amount_cents, p.currency)}, ${t.status}, ${dateTime(t.created_at)}`),
    );
    found.replaceChildren(
      h(
        "section",
        { class: "stack", "aria-labelledby": title.id },
        title,
        h("dl", { class: "details" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        txns.length ? [h("h4", {}, "Transactions"), h("ul", {}, txns)] : null,
        alert,
        p.status === "completed" ? refundButton(p, alert) : null,
      ),
    );
  }

  onSubmit(lookup, async () => {
    const value = paymentId.value.trim();
    found.replaceChildren();
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)) {
      return showErrors(lookup, [{ field: "id", message: "Enter a payment id, like 01234567-89ab-7def-8123-456789abcdef." }]);
    }
    try {
      const p = await api("GET", `/api/payments/payments/${value}`);
      clearErrors(lookup);
      showPayment(p);
      announce(`Payment ${p.id}: ${p.status}.`);
    } catch (e) {
      showProblem(lookup, e);
    }
  });

  async function load() {
    listAlert.textContent = "";
    try {
      const res = await api("GET", `/api/payments/payments?all=true&status=completed&page=${page}&per_page=${PER_PAGE}`);
      if (res.items.length === 0 && page > 1) {
        page -= 1;
        return load();
      }
      const code = (text) => h("code", { class: "id" }, text);
      const rows = res.items.map((p) =>
        tr(code(p.id), dateTime(p.created_at), money(p.amount_cents, p.currency), card(p), code(p.booking_id), refundButton(p, listAlert)));
      results.replaceChildren(
        rows.length
          ? table("Completed payments", ["Payment id", "Paid at", "Amount", "Card", "Booking id", "Refund"], rows)
          : h("p", { class: "muted" }, "No completed payments."),
        pager(res, turner((p) => (page = p), load, listSection), "payment"));
    } catch (e) {
      listAlert.textContent = `Could not list payments: ${describe(e)}`;
    }
  }

  root.append(heading("Refunds"), outcome, section("Look up a payment", lookup, found), listSection);
  load();
}

// ==== Signing in, and the shell: header, routes, focus.

function signInView(root) {
  const username = h("input", { name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card stack", novalidate: true },
    field("Username or email", username), field("Password", password), alertBox(), h("button", { type: "submit" }, "Sign in"));
  onSubmit(form, async () => {
    const problems = [];
    if (!username.value.trim()) problems.push({ field: "username", message: "Enter your username or email." });
    if (!password.value) problems.push({ field: "password", message: "Enter your password." });
    if (problems.length) return showErrors(form, problems);
    try {
      const user = await session.signIn(username.value.trim(), password.value);
      announce(`Signed in as ${user.username}.`);
    } catch (e) {
      showProblem(form, e);
      if (e.status !== 422) password.focus();
    }
  });
  root.append(heading("Sign in to the admin console"), h("p", { class: "muted" }, "The console is for accounts with the admin role."), form);
}

function notAdminView(root, user) {
  root.append(
    heading("Admins only"),
    h("p", { class: "error" }, `You are signed in as ${user.username} (${user.email}), a ${user.role} account. ` +
      "The admin console needs an account with the admin role."),
    h("div", { class: "actions" }, h("button", { type: "button", onclick: signOut }, "Sign out"),
      h("a", { href: "/", class: "button secondary" }, "Go to the booking site")));
}

async function signOut() {
  await session.signOut();
  announce("Signed out.");
}

const VIEWS = { movies: moviesView, theaters: theatersView, showtimes: showtimesView, sales: salesView, refunds: refundsView };

function route() {
  let raw = location.hash.slice(1);
  try {
    raw = decodeURIComponent(raw);
  } catch {
    // A malformed escape: the default route.
  }
  const [name, ...rest] = raw.split("/");
  return VIEWS[name] ? { name, arg: rest.join("/") || null } : { name: "movies", arg: null };
}

const userKey = (user) => (user ? `${user.id}:${user.role}` : "");
let shownUser = null;

function render(focus) {
  const user = session.user;
  shownUser = userKey(user);
  const admin = user?.role === "admin";
  nav.hidden = !admin;
  account.hidden = !user;
  who.textContent = user ? `Signed in as ${user.username}` : "";
  const root = h("div", { class: "stack" });
  announce("");
  if (!user) signInView(root);
  else if (!admin) notAdminView(root, user);
  else {
    const { name, arg } = route();
    for (const a of nav.querySelectorAll("a")) {
      if (a.getAttribute("href") === `#${name}`) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    VIEWS[name](root, arg);
  }
  view.replaceChildren(root);
  const h1 = root.querySelector("h1");
  document.title = `${h1?.textContent || "Admin console"} · boxoffice admin`;
  if (focus) h1?.focus();
}

window.addEventListener("hashchange", () => {
  if (location.hash === "#main") return;
  render(true);
});

// The skip link goes to the view's heading without touching the route.
document.querySelector("a.skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  (view.querySelector("h1") || document.getElementById("main")).focus();
});

// A section's link while on it renders the section afresh.
nav.addEventListener("click", (e) => {
  const a = e.target.closest("a");
  if (a && a.getAttribute("href") === location.hash) render(true);
});

document.getElementById("sign-out").addEventListener("click", signOut);

// A token refresh saves the session too: only another user (or none) re-renders.
session.onChange((user) => {
  if (userKey(user) !== shownUser) render(true);
});

render(false);
