// The booking site as customers use it: find a movie, its showtime, choose seats on the live
// seat map (mouse and keyboard), sign in inline without losing the choice, book, pay (a
// declined card, then a good one), watch another browser see the seats turn held then booked,
// lose a seat taken between choosing and booking, cancel and see the refund, read the
// notifications; token refresh, sign out, and the phone layout. axe on every page.

export default async function siteScenario(t) {
  const { assert } = t;
  const suffix = Date.now().toString(36);
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

  // A screening of our own: rows A (8 standard), B (8 premium), C (4 accessible), tomorrow.
  const admin = await t.token(t.admin.username, t.admin.password);
  const title = `Browser Premiere ${suffix}`;
  const movie = await t.rest("POST", "/api/movies/movies", { token: admin, body: { title, description: "A film made for the browser tests.", duration_minutes: 95, genre: "Drama", release_date: "2026-01-01" } });
  const theater = await t.rest("POST", "/api/movies/theaters", {
    token: admin,
    body: { name: `Screen ${suffix}`, location: "Level 2", layout: [{ row: "A", seats: 8, type: "standard" }, { row: "B", seats: 8, type: "premium" }, { row: "C", seats: 4, type: "accessible" }] },
  });
  const showtime = await t.rest("POST", "/api/movies/showtimes", { token: admin, body: { movie_id: movie.id, theater_id: theater.id, start_time: `${tomorrow}T12:00:00Z`, price_cents: 1100 } });
  const seatId = Object.fromEntries(theater.seats.map((s) => [`${s.row}${s.number}`, s.id]));
  const seat = (page, label) => page.locator(`[data-seat="${seatId[label]}"]`);
  const state = (page, label) => seat(page, label).getAttribute("data-state");
  const live = (page) => page.waitForSelector("main[data-live=true]");
  // Registers `username` in the seat map's panel, where the choice of seats waits.
  const signUpInline = async (panel, username) => {
    await panel.getByRole("button", { name: "Create an account" }).click();
    await panel.getByLabel("Email").fill(`${username}@example.com`);
    await panel.getByLabel("Username").fill(username);
    await panel.getByLabel("Password (at least 8 characters)").fill("correct horse battery");
    await panel.getByRole("button", { name: "Create account" }).click();
  };

  const ana = await t.newPage();
  let firstPage = 0;
  await t.step("the first page is under 100 KB transferred", async () => {
    const sizes = [];
    ana.on("requestfinished", async (req) => sizes.push((await req.sizes()).responseBodySize + (await req.sizes()).responseHeadersSize));
    await ana.goto(`${t.base}/`, { waitUntil: "networkidle" });
    await ana.getByRole("heading", { name: "Now showing" }).waitFor();
    firstPage = sizes.reduce((a, b) => a + b, 0);
    console.log(`  first page: ${sizes.length} responses, ${(firstPage / 1024).toFixed(1)} KB transferred`);
    assert.ok(firstPage < 100 * 1024, `first page ${firstPage} bytes`);
    await t.check(ana, "movies");
  });

  await t.step("search, the movie, its showtimes by day", async () => {
    await ana.getByLabel("Search titles").fill(title);
    await ana.getByRole("button", { name: "Search" }).click();
    await ana.getByRole("link", { name: title }).click();
    await ana.getByRole("heading", { name: title }).waitFor();
    const day = ana.getByRole("list", { name: "Days" }).getByRole("button").nth(1);
    await day.click();
    const link = ana.getByRole("link", { name: new RegExp(`in Screen ${suffix}, from \\$11\\.00, 20 seats free`) });
    await link.waitFor();
    await t.check(ana, "movie");
    await link.click();
    await live(ana);
    await t.check(ana, "seat-map");
  });

  await t.step("every seat is a labelled button; the keyboard moves and chooses", async () => {
    assert.equal(await ana.locator("button.seat").count(), 20);
    await ana.getByRole("button", { name: "Row B, seat 2, premium, $16.50, available" }).waitFor();
    await ana.getByRole("button", { name: "Row C, seat 1, accessible, $11.00, available" }).waitFor();
    await seat(ana, "A1").focus();
    await ana.keyboard.press("ArrowRight");
    await ana.keyboard.press("ArrowRight");
    await ana.keyboard.press("ArrowDown");
    await ana.keyboard.press("ArrowUp");
    await ana.keyboard.press("Space");
    assert.equal(await state(ana, "A3"), "selected");
    assert.equal(await seat(ana, "A3").getAttribute("aria-label"), "Row A, seat 3, standard, $11.00, selected by you");
    await ana.keyboard.press("Enter");
    assert.equal(await state(ana, "A3"), "available", "Enter unchooses");
    await seat(ana, "A4").click();
    await seat(ana, "A5").click();
    assert.equal(await ana.locator("button.seat[aria-pressed=true]").count(), 2);
  });

  // Bea watches the same showtime from another browser, signed out.
  const bea = await t.newPage();
  await bea.goto(`${t.base}/#/showtimes/${showtime.id}`);
  await live(bea);

  await t.step("sign up inline without losing the seats, book: the other browser sees them held", async () => {
    const panel = ana.getByRole("complementary", { name: "Your seats" });
    await signUpInline(panel, `ana${suffix}`);
    await panel.getByRole("button", { name: "Book 2 seats" }).click();
    await ana.getByRole("heading", { name: "Pay for your seats" }).waitFor();
    await bea.waitForFunction((ids) => ids.every((id) => document.querySelector(`[data-seat="${id}"]`)?.dataset.state === "held"), [seatId.A4, seatId.A5]);
    assert.match(await seat(bea, "A4").getAttribute("aria-label"), /^Row A, seat 4, standard, \$11\.00, held by another customer$/);
  });

  await t.step("the hold counts down; a declined card, then a good one: confirmed, and booked for the other browser", async () => {
    const clock = ana.locator("#hold .countdown");
    assert.match(await clock.textContent(), /^(9|10):\d\d$/);
    await ana.getByText("4000000000000002").waitFor();
    await ana.getByLabel("Card number").fill("4000000000000002");
    await ana.getByLabel("Expiry (MM/YY)").fill("12/30");
    await ana.getByLabel("Security code").fill("123");
    await ana.getByRole("button", { name: "Pay $22.00" }).click();
    await ana.getByRole("alert").filter({ hasText: "declined" }).waitFor();
    await t.check(ana, "payment-declined");
    await ana.getByLabel("Card number").fill("4242 4242 4242 4242");
    await ana.getByRole("button", { name: "Pay $22.00" }).click();
    await ana.getByRole("heading", { name: "Booking confirmed" }).waitFor();
    await t.check(ana, "confirmed");
    await bea.waitForFunction((ids) => ids.every((id) => document.querySelector(`[data-seat="${id}"]`)?.dataset.state === "booked"), [seatId.A4, seatId.A5]);
    await t.check(bea, "seat-map-live");
  });

  await t.step("a seat taken between choosing and booking is shown as taken, and nothing is booked", async () => {
    // Cem's map does not follow the stream (blocked), so the 409 is what tells him.
    const cem = await t.newPage();
    await cem.route("**/seat-states/stream", (route) => route.abort());
    await cem.goto(`${t.base}/#/showtimes/${showtime.id}`);
    await seat(cem, "B1").click();
    await seat(cem, "B2").click();
    const dan = await t.customer("dan");
    await t.rest("POST", "/api/bookings/book", { token: dan.token, body: { showtime_id: showtime.id, seat_ids: [seatId.B2] } });
    const panel = cem.getByRole("complementary", { name: "Your seats" });
    await signUpInline(panel, `cem${suffix}`);
    await panel.getByRole("button", { name: "Book 2 seats" }).click();
    await panel.getByRole("alert").filter({ hasText: "B2 was just taken by someone else" }).waitFor();
    assert.equal(await state(cem, "B2"), "held");
    assert.deepEqual((await seat(cem, "B2").getAttribute("class")).split(" ").sort(), ["held", "premium", "seat", "taken"]);
    assert.equal(await state(cem, "B1"), "selected", "the other chosen seat stays chosen");
    await t.check(cem, "seat-taken");
    const token = await cem.evaluate(() => JSON.parse(localStorage.getItem("boxoffice.session")).access_token);
    assert.equal((await t.rest("GET", "/api/bookings/bookings", { token })).total, 0, "all or nothing");
    await cem.context().close();
  });

  await t.step("an expired access token is refreshed on the next call", async () => {
    const before = await ana.evaluate(() => {
      const s = JSON.parse(localStorage.getItem("boxoffice.session"));
      s.expires_at = Date.now() - 1000;
      localStorage.setItem("boxoffice.session", JSON.stringify(s));
      return s.refresh_token;
    });
    await ana.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "My bookings" }).click();
    await ana.getByRole("heading", { name: "My bookings" }).waitFor();
    await ana.locator("[data-status=confirmed]").waitFor();
    const after = await ana.evaluate(() => JSON.parse(localStorage.getItem("boxoffice.session")));
    assert.notEqual(after.refresh_token, before, "the refresh token was rotated");
    assert.ok(after.expires_at > Date.now(), "a fresh access token");
  });

  await t.step("cancel a paid booking and see the refund", async () => {
    const card = ana.locator("li[data-booking]").filter({ hasText: title });
    await card.getByRole("button", { name: "Cancel booking" }).click();
    await card.getByRole("button", { name: "Confirm: cancel and refund" }).click();
    await card.locator("[data-status=cancelled]").waitFor();
    await card.locator("[data-refund=refunded]").waitFor({ timeout: 30_000 });
    assert.match(await card.locator("[data-refund]").textContent(), /^Refunded \$22\.00 to visa ····4242$/);
    await t.check(ana, "my-bookings");
    await bea.waitForFunction((ids) => ids.every((id) => document.querySelector(`[data-seat="${id}"]`)?.dataset.state === "available"), [seatId.A4, seatId.A5]);
  });

  await t.step("the customer's notifications", async () => {
    await ana.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Notifications" }).click();
    await t.until("the refund's email", async () => {
      await ana.reload();
      await ana.getByRole("heading", { name: "Notifications" }).waitFor();
      return (await ana.locator("tbody tr").count()) >= 5;
    });
    const subjects = await ana.locator("tbody tr td:first-child").allTextContents();
    assert.ok(subjects.some((s) => /refund/i.test(s)), subjects.join(" | "));
    await t.check(ana, "notifications");
  });

  await t.step("sign out", async () => {
    await ana.getByRole("button", { name: "Sign out" }).click();
    await ana.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Sign in" }).waitFor();
    assert.equal(await ana.evaluate(() => localStorage.getItem("boxoffice.session")), null);
  });

  await t.step("at a phone's width", async () => {
    const phone = await t.newPage({ phone: true });
    await phone.goto(`${t.base}/`);
    await phone.getByRole("heading", { name: "Now showing" }).waitFor();
    await t.check(phone, "movies");
    await phone.goto(`${t.base}/#/showtimes/${showtime.id}`);
    await live(phone);
    await t.check(phone, "seat-map");
    // A theater wider than the phone: its map scrolls, the page does not.
    const wide = await t.rest("POST", "/api/movies/theaters", { token: admin, body: { name: `Wide ${suffix}`, location: "Level 3", layout: [{ row: "A", seats: 30, type: "standard" }, { row: "B", seats: 30, type: "premium" }] } });
    const wideShow = await t.rest("POST", "/api/movies/showtimes", { token: admin, body: { movie_id: movie.id, theater_id: wide.id, start_time: `${tomorrow}T12:00:00Z`, price_cents: 1100 } });
    await phone.goto(`${t.base}/#/showtimes/${wideShow.id}`);
    await phone.getByRole("button", { name: /^Row A, seat 30,/ }).waitFor();
    await live(phone);
    const [page, map, shown] = await phone.evaluate(() => [document.documentElement.scrollWidth, document.querySelector(".seatmap").scrollWidth, document.querySelector(".seatmap").clientWidth]);
    assert.ok(page <= 390, `the page scrolls sideways: ${page}px wide`);
    assert.ok(map > shown, "the map scrolls inside its box");
    await phone.getByRole("button", { name: /^Row A, seat 30,/ }).focus();
    assert.ok(await phone.evaluate(() => document.querySelector(".seatmap").scrollLeft > 0), "a focused seat is scrolled into view");
    await phone.context().close();
  });
  await bea.context().close();
  await ana.context().close();
  console.log(`  first page transferred: ${firstPage} bytes`);
}
