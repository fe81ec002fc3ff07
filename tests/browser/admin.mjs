// The admin console's scenario: an admin signs in at /admin, adds a movie (a 422 shown by its
// field first), lays out a theater in the row editor (the preview counts the seats before it is
// saved), schedules a showtime and is refused an overlapping one, reads the showtime's sales,
// sees them change once a customer (driven through the REST API from node) has booked and paid
// two seats, refunds that payment, and checks every view with axe, once at phone size too.
// Locators go by role and label, so they also prove the labels are there.

import { randomUUID } from "node:crypto";

/** The four sales figures as the page shows them. */
const figures = (page) =>
  page.evaluate(() =>
    Object.fromEntries(
      ["sold", "held", "free", "revenue"].map((k) => [k, document.querySelector(`[data-stat="${k}"]`)?.textContent.trim()]),
    ),
  );

/** Cents formatted the way the page formats money (its own locale). */
const formatted = (page, cents, currency = "USD") =>
  page.evaluate(([c, cur]) => new Intl.NumberFormat(undefined, { style: "currency", currency: cur }).format(c / 100), [cents, currency]);

async function signIn(page, t) {
  await page.getByRole("heading", { level: 1, name: "Sign in to the admin console" }).waitFor();
  await page.getByLabel("Username or email").fill(t.admin.username);
  await page.getByLabel("Password").fill(t.admin.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Admin sections" }).waitFor();
}

async function open(page, section) {
  await page.getByRole("navigation", { name: "Admin sections" }).getByRole("link", { name: section, exact: true }).click();
  await page.getByRole("heading", { level: 1, name: section }).waitFor();
}

export default async function adminScenario(t) {
  const { assert } = t;
  const suffix = Date.now();
  const title = `Admin test ${suffix}`;
  const hall = `Hall ${suffix}`;
  const page = await t.newPage();
  let showtimeId;
  let payment;
  let seats;

  await t.step("sign in as the admin", async () => {
    await page.goto(`${t.base}/admin`);
    await signIn(page, t);
    await page.getByRole("heading", { level: 1, name: "Movies" }).waitFor();
    const current = page.getByRole("navigation", { name: "Admin sections" }).getByRole("link", { name: "Movies", exact: true });
    assert.equal(await current.getAttribute("aria-current"), "page");
    await page.getByRole("banner").getByText(/^Signed in as /).waitFor();
    // Focus follows navigation to the view's heading.
    await open(page, "Theaters");
    assert.equal(await page.evaluate(() => document.activeElement?.tagName), "H1");
    await open(page, "Movies");
  });

  await t.step("add a movie: the server's 422 is shown by its field, then it is saved", async () => {
    const form = page.getByRole("region", { name: "Add a movie" });
    await form.getByLabel("Title", { exact: true }).fill(title);
    await form.getByLabel("Genre", { exact: true }).fill("Drama");
    const duration = form.getByLabel("Duration (minutes)");
    await duration.fill("2000");
    await form.getByLabel("Release date").fill("2024-05-01");
    await form.getByLabel("Rating (optional)").fill("PG-13");
    await form.getByLabel("Description").fill("Added by the admin console's browser test.");
    await form.getByRole("button", { name: "Add movie" }).click();

    const error = form.locator("p.field-error", { hasText: "1440" });
    await error.waitFor();
    assert.equal(await duration.getAttribute("aria-invalid"), "true");
    const describedBy = (await duration.getAttribute("aria-describedby")).split(/\s+/);
    assert.ok(describedBy.includes(await error.getAttribute("id")), "the duration field is described by its error");
    await form.getByRole("alert").filter({ hasText: /field/ }).waitFor();

    await duration.fill("100");
    await form.getByRole("button", { name: "Add movie" }).click();
    await form.getByText(`Added “${title}”.`).waitFor();
    assert.equal(await form.locator("p.field-error").count(), 0, "the errors are gone once it is saved");

    const search = page.getByRole("search", { name: "Movies" });
    await search.getByLabel("Search titles").fill(title);
    await search.getByRole("button", { name: "Search" }).click();
    const row = page.getByRole("row").filter({ hasText: title });
    await row.waitFor();
    assert.match(await row.innerText(), /Drama[\s\S]*100 min/);
    await t.check(page, "admin-movies");
  });

  await t.step("lay out a theater; the preview counts 16 seats before it is saved", async () => {
    await open(page, "Theaters");
    const form = page.getByRole("region", { name: "Add a theater" });
    await form.getByLabel("Theater name").fill(hall);
    await form.getByLabel("Location").fill("Browser test wing");
    const layout = [
      ["A", "6", "standard"],
      ["B", "6", "premium"],
      ["C", "4", "accessible"],
    ];
    for (const [i, [row, count, type]] of layout.entries()) {
      if (i > 0) await form.getByRole("button", { name: "Add row" }).click();
      await form.getByLabel(`Row ${i + 1} name`).fill(row);
      await form.getByLabel(`Row ${i + 1} seats`).fill(count);
      await form.getByLabel(`Row ${i + 1} seat type`).selectOption(type);
    }
    // A fourth row, moved up then removed: rows A, B, C remain in order.
    await form.getByRole("button", { name: "Add row" }).click();
    assert.equal(await form.getByLabel("Row 4 name").inputValue(), "D");
    await form.getByRole("button", { name: "Move row 4 up" }).click();
    assert.equal(await form.getByLabel("Row 3 name").inputValue(), "D");
    assert.equal(await form.getByLabel("Row 4 name").inputValue(), "C");
    await form.getByRole("button", { name: "Remove row 3" }).click();
    assert.deepEqual(
      await Promise.all([1, 2, 3].map((n) => form.getByLabel(`Row ${n} name`).inputValue())),
      ["A", "B", "C"],
    );
    assert.equal(await form.getByLabel("Row 3 seat type").inputValue(), "accessible");
    assert.equal(await form.getByLabel("Row 4 name").count(), 0);

    const preview = form.locator("figure", { hasText: "Preview:" });
    await preview.getByText("Preview: 16 seats in 3 rows").waitFor();
    assert.equal(await preview.locator(".seat-row span.seat").count(), 16);
    assert.equal(await preview.locator(".seat-row span.seat.standard").count(), 6);
    assert.equal(await preview.locator(".seat-row span.seat.premium").count(), 6);
    assert.equal(await preview.locator(".seat-row span.seat.accessible").count(), 4);
    assert.deepEqual(await preview.locator(".seat-row .row-name").allInnerTexts(), ["A", "B", "C"]);
    // The preview follows every input.
    await form.getByLabel("Row 3 seats").fill("5");
    await preview.getByText("Preview: 17 seats in 3 rows").waitFor();
    await form.getByLabel("Row 3 seats").fill("4");
    await preview.getByText("Preview: 16 seats in 3 rows").waitFor();
    await t.check(page, "admin-theaters");

    await form.getByRole("button", { name: "Add theater" }).click();
    await form.getByText(`Added ${hall} with 16 seats.`).waitFor();
    const saved = page.locator("figure", { hasText: `${hall}: 16 seats in 3 rows` });
    await saved.waitFor();
    assert.equal(await saved.locator(".seat-row span.seat.premium").count(), 6);
  });

  await t.step("schedule a showtime; an overlapping one is refused with a clear error", async () => {
    await open(page, "Showtimes");
    const form = page.getByRole("region", { name: "Schedule a showtime" });
    await form.getByLabel("Movie", { exact: true }).selectOption({ label: title });
    await form.getByLabel("Theater", { exact: true }).selectOption({ label: hall });
    const tomorrow = await page.evaluate(() => {
      const d = new Date();
      d.setDate(d.getDate() + 1);
      const p = (n) => String(n).padStart(2, "0");
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
    });
    const start = form.getByLabel("Starts at");
    await start.fill(`${tomorrow}T10:00`);
    await form.getByLabel("Price (USD)").fill("9.50");
    await form.getByRole("button", { name: "Schedule showtime" }).click();
    const done = form.getByText(/^Scheduled /);
    await done.waitFor();
    const price = await formatted(page, 950);
    assert.ok((await done.innerText()).includes(price), `the confirmation names the price ${price}`);

    // The list shows the new showtime's day; narrowed to its theater, it is on the first page
    // however many other showtimes that day has.
    const list = page.getByRole("region", { name: "Showtimes by day" });
    await list.getByLabel("Filter by theater").selectOption({ label: hall });
    await list.getByRole("button", { name: "Show showtimes" }).click();
    await page.locator("#status").getByText("1 showtime found.").waitFor();
    const row = list.getByRole("row").filter({ hasText: title });
    await row.waitFor();
    assert.match(await row.innerText(), new RegExp(`${hall}[\\s\\S]*16 of 16`));
    const href = await row.getByRole("link", { name: /^Sales of / }).getAttribute("href");
    showtimeId = href.replace(/^#sales\//, "");
    const stored = await t.rest("GET", `/api/movies/showtimes/${showtimeId}`);
    assert.equal(stored.price_cents, 950);
    assert.equal(stored.currency, "USD");
    const expectedStart = await page.evaluate((day) => new Date(`${day}T10:00`).toISOString(), tomorrow);
    assert.equal(Date.parse(stored.start_time), Date.parse(expectedStart), "10:00 local time, sent as UTC");

    await start.fill(`${tomorrow}T10:30`);
    await form.getByRole("button", { name: "Schedule showtime" }).click();
    await form.getByRole("alert").filter({ hasText: "overlaps another one in the same theater" }).waitFor();
    assert.equal(await start.getAttribute("aria-invalid"), "true");
    const listed = await t.rest("GET", `/api/movies/showtimes?theater_id=${stored.theater_id}&per_page=100`);
    assert.equal(listed.total, 1, "the overlapping showtime was not created");
    await t.check(page, "admin-showtimes");
  });

  await t.step("the new showtime's sales: nothing sold", async () => {
    const row = page.getByRole("region", { name: "Showtimes by day" }).getByRole("row").filter({ hasText: title });
    await row.getByRole("link", { name: /^Sales of / }).click();
    await page.getByRole("heading", { level: 1, name: "Sales" }).waitFor();
    assert.equal(new URL(page.url()).hash, `#sales/${showtimeId}`);
    await page.getByRole("heading", { level: 2, name: `${title} in ${hall}` }).waitFor();
    await page.waitForFunction(() => document.querySelector('[data-stat="free"]')?.textContent === "16");
    assert.deepEqual(await figures(page), { sold: "0", held: "0", free: "16", revenue: await formatted(page, 0) });
    await t.check(page, "admin-sales");
  });

  await t.step("a customer books and pays two seats through the REST API", async () => {
    const { token } = await t.customer("buyer");
    const map = await t.rest("GET", `/api/movies/showtimes/${showtimeId}/seats`);
    seats = map.seats.filter((s) => s.status === "available").slice(0, 2);
    assert.equal(seats.length, 2);
    const booking = await t.rest("POST", "/api/bookings/book", {
      token,
      body: { showtime_id: showtimeId, seat_ids: seats.map((s) => s.id) },
    });
    payment = await t.rest("POST", "/api/payments/pay", {
      token,
      headers: { "Idempotency-Key": randomUUID() },
      body: { booking_id: booking.id, card_number: "4242424242424242", card_expiry: "12/30", card_cvc: "123" },
    });
    assert.equal(payment.status, "completed");
    await t.until("the booking to be confirmed", async () => {
      const b = await t.rest("GET", `/api/bookings/bookings/${booking.id}`, { token });
      return b.status === "confirmed";
    });
  });

  await t.step("Refresh shows the two seats sold and their revenue", async () => {
    const revenue = await formatted(page, seats.reduce((n, s) => n + s.price_cents, 0));
    const refresh = page.getByRole("button", { name: "Refresh" });
    const now = await t.until("the sales to show 2 sold", async () => {
      await refresh.click();
      // The button is aria-disabled while its refresh runs.
      await page.waitForFunction(() => !document.querySelector('button[aria-disabled="true"]'));
      const f = await figures(page);
      return f.sold === "2" ? f : null;
    });
    assert.deepEqual(now, { sold: "2", held: "0", free: "14", revenue });
    const standard = page.getByRole("row").filter({ hasText: /^Standard/ });
    assert.match(await standard.innerText(), /^Standard\s+6\s+2\s+0\s+4\s/);
  });

  await t.step("refund the customer's payment", async () => {
    await open(page, "Refunds");
    const amount = await formatted(page, payment.amount_cents, payment.currency);
    const row = page.getByRole("region", { name: "Completed payments" }).getByRole("row").filter({ hasText: payment.id });
    await row.waitFor();
    await row.getByRole("button", { name: /^Refund / }).click();
    await row.getByRole("button", { name: `Confirm refund of ${amount}` }).click();
    await page.getByText(`payment ${payment.id} is now refunded`).first().waitFor();
    await row.waitFor({ state: "detached" });
    const looked = page.getByRole("region", { name: "Look up a payment" });
    await looked.getByLabel("Payment id").fill(payment.id);
    await looked.getByRole("button", { name: "Look up" }).click();
    await looked.getByRole("heading", { name: `Payment ${payment.id}` }).waitFor();
    assert.equal(await looked.locator("#payment-status").innerText(), "Refunded");
    assert.equal(await looked.getByRole("button", { name: /^Refund / }).count(), 0, "a refunded payment offers no refund");
    const stored = await t.rest("GET", `/api/payments/payments/${payment.id}`, {
      token: await t.token(t.admin.username, t.admin.password),
    });
    assert.equal(stored.status, "refunded");
    await t.check(page, "admin-refunds");
  });

  await t.step("at phone size (390 px)", async () => {
    const phone = await t.newPage({ phone: true });
    await phone.goto(`${t.base}/admin#sales/${showtimeId}`);
    await signIn(phone, t);
    await phone.getByRole("heading", { level: 1, name: "Sales" }).waitFor();
    await phone.waitForFunction(() => document.querySelector('[data-stat="sold"]')?.textContent === "2");
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
    await t.check(phone, "admin-sales");
  });

  await t.step("sign out", async () => {
    await page.getByRole("button", { name: "Sign out" }).first().click();
    await page.getByRole("heading", { level: 1, name: "Sign in to the admin console" }).waitFor();
    assert.ok(await page.getByRole("navigation", { name: "Admin sections" }).isHidden());
  });
}
