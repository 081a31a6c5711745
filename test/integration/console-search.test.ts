import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runCancel } from "../../src/cli/cancel-command.js";
import { AuditTrail } from "../../src/store/audit-trail.js";
import { ConsoleSessions } from "../../src/store/console-sessions.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
} from "../support/pipeline-harness.js";

/** The console's pages over HTTP, signed in with a session as the sign-in page starts one. */

const TOKEN = "console-token-0123456789";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

async function get(p: PipelineHarness, cookie: string, path: string): Promise<Response> {
  return fetch(`${p.worker?.httpAddress}${path}`, {
    headers: { cookie: `fu_console=${cookie}` },
    redirect: "manual",
  });
}

async function search(
  p: PipelineHarness,
  cookie: string,
  q: string,
): Promise<{ status: number; location: string | null; body: string }> {
  const response = await fetch(
    `${p.worker?.httpAddress}/console/search?q=${encodeURIComponent(q)}`,
    { headers: { cookie: `fu_console=${cookie}` }, redirect: "manual" },
  );
  return {
    status: response.status,
    location: response.headers.get("location"),
    body: await response.text(),
  };
}

describe("console search", () => {
  it("finds customers and orders whose ids are all digits, and still finds a phone number", async () => {
    pipeline = await startPipeline("console-search", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-digits",
        orderId: "200345678",
        occurredAt,
        customer: {
          id: "100234567",
          email: "digits.customer@example.com",
          phone: "+447400900031",
          name: "Dita Ids",
        },
        items: [item("televisions", "899.00", { name: "OLED TV" })],
      }) as never,
    );
    await eventually(
      async () =>
        (await p.store.stepRecords("evt-digits", ["big-ticket.thank-you"])).size > 0
          ? true
          : undefined,
      "the purchase to be planned",
    );
    const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);

    const customer = await search(p, cookie, "100234567");
    expect(customer.status).toBe(303);
    expect(customer.location).toBe("/console/customers/100234567");
    const order = await search(p, cookie, "200345678");
    expect(order.status).toBe(303);
    expect(order.location).toBe("/console/orders/200345678");
    const phone = await search(p, cookie, "+44 7400 900031");
    expect(phone.status).toBe(303);
    expect(phone.location).toBe("/console/customers/100234567");

    const unknown = await search(p, cookie, "100234568");
    expect(unknown.status).toBe(404);
    expect(unknown.body).toContain("No customer or order <bdi>100234568</bdi> is known");
    // A national number is not guessed at: numbers are looked up in international format.
    const national = await search(p, cookie, "07400 900031");
    expect(national.status).toBe(404);
    expect(national.body).toContain("Phone numbers are looked up in international format");
  });

  it("opens customers whose ids are erase or opt-out, the names of the query-id actions' paths", async () => {
    pipeline = await startPipeline("console-search", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    for (const id of ["erase", "opt-out"]) {
      await p.publisher.publish(
        purchaseInput({
          id: `evt-${id}`,
          orderId: `order-${id}`,
          occurredAt,
          customer: { id, email: `${id}.customer@example.com`, name: "Ada" },
          items: [item("televisions", "899.00", { name: "OLED TV" })],
        }) as never,
      );
      await eventually(
        async () =>
          (await p.store.stepRecords(`evt-${id}`, ["big-ticket.thank-you"])).size > 0
            ? true
            : undefined,
        "the purchase to be planned",
      );
    }
    const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
    for (const id of ["erase", "opt-out"]) {
      const found = await search(p, cookie, id);
      expect(found.status).toBe(303);
      const page = await get(p, cookie, found.location ?? "");
      const body = await page.text();
      expect({ id, status: page.status }).toEqual({ id, status: 200 });
      expect(body).toContain(`<bdi>${id}.customer@example.com</bdi>`);
      // The customer's link on the order's page leads there too.
      const order = await (await get(p, cookie, `/console/orders/order-${id}`)).text();
      const href = /<dt>Customer id<\/dt><dd><a href="([^"]+)"/.exec(order)?.[1] ?? "";
      expect((await get(p, cookie, href.replaceAll("&amp;", "&"))).status).toBe(200);
      // Its former path, now the query-id action's: a GET of it (a bookmark) leads to the page.
      const bookmark = await get(p, cookie, `/console/customers/${id}`);
      expect({ id, location: bookmark.headers.get("location") }).toEqual({
        id,
        location: `/console/customers?id=${id}`,
      });
    }
  });

  it("finds customers and orders whose ids contain an @, as ids first, then by address", async () => {
    pipeline = await startPipeline("console-search-at", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    // Shops name accounts by the address they were opened with, and orders `web@1042`: the
    // address the customer has now is another one.
    await p.publisher.publish(
      purchaseInput({
        id: "evt-at",
        orderId: "web@1042",
        occurredAt,
        customer: { id: "first.address@example.com", email: "now.elsewhere@example.com" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await eventually(
      async () =>
        (await p.store.stepRecords("evt-at", ["big-ticket.thank-you"])).size > 0 ? true : undefined,
      "the purchase to be planned",
    );
    const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);

    const customer = await search(p, cookie, "first.address@example.com");
    expect(customer.status).toBe(303);
    expect(customer.location).toBe("/console/customers/first.address%40example.com");
    const order = await search(p, cookie, "web@1042");
    expect(order.status).toBe(303);
    expect(order.location).toBe("/console/orders/web%401042");
    // The address they have now still finds them.
    const address = await search(p, cookie, "Now.Elsewhere@example.com");
    expect(address.status).toBe(303);
    expect(address.location).toBe("/console/customers/first.address%40example.com");
    const unknown = await search(p, cookie, "nobody@example.com");
    expect(unknown.status).toBe(404);
    expect(unknown.body).toContain("No customer is known with <bdi>nobody@example.com</bdi>");
  });
});

describe("console preview", () => {
  it("says a cancelled step was not sent, why, and shows it as it would have been rendered", async () => {
    pipeline = await startPipeline("console-preview", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-preview",
        orderId: "ord-preview",
        occurredAt,
        customer: { id: "cus-preview", email: "preview.customer@example.com", name: "Pia" },
        items: [item("televisions", "899.00", { name: "OLED TV" })],
      }) as never,
    );
    const ref = "evt-preview/big-ticket.thank-you";
    await eventually(
      async () =>
        (await p.store.stepRecords("evt-preview", ["big-ticket.thank-you"])).get(
          "big-ticket.thank-you",
        )?.state === "scheduled"
          ? true
          : undefined,
      "the purchase to be planned",
    );
    const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
    const path = `/console/preview?ref=${encodeURIComponent(ref)}`;
    const pending = await (await get(p, cookie, path)).text();
    expect(pending).toContain(
      "As it will be rendered by email to <bdi>preview.customer@example.com</bdi>.",
    );

    Object.assign(process.env, p.commandEnv);
    await runCancel(
      { config: p.configDir, step: ref, reason: "asked us", by: "dana" },
      captureIo(),
    );
    const response = await get(p, cookie, path);
    expect(response.status).toBe(200);
    const cancelled = await response.text();
    expect(cancelled).not.toContain("As it was rendered");
    expect(cancelled).toContain(
      "Not sent: cancelled (someone at the shop cancelled it). As it would have been rendered by email to <bdi>preview.customer@example.com</bdi>",
    );
  });

  it("leads back from a message to the timeline or order page it was opened from", async () => {
    pipeline = await startPipeline("console-preview-back", {
      env: { ADMIN_TOKENS: `dana:${TOKEN}` },
    });
    const p = pipeline;
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-back",
        orderId: "ord-back",
        occurredAt,
        customer: { id: "cus-back" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await eventProcessed(p, "evt-back");
    const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
    for (const from of ["/console/customers/cus-back", "/console/orders/ord-back"]) {
      const timeline = await (await get(p, cookie, from)).text();
      const preview = /<a href="([^"]+)">Preview<\/a>/
        .exec(timeline)?.[1]
        ?.replaceAll("&amp;", "&");
      expect(preview).toMatch(/^\/console\/preview\?/);
      const message = await get(p, cookie, preview ?? "");
      expect(message.status).toBe(200);
      const back = /<a href="([^"]+)">Back<\/a>/.exec(await message.text())?.[1];
      expect(back, `the way back from a message opened on ${from}`).toBe(from);
    }
  });

  it("shows a pending message as it will go after a partial refund: without the items handed back", async () => {
    pipeline = await startPipeline("console-preview-refund", {
      env: { ADMIN_TOKENS: `dana:${TOKEN}` },
    });
    const p = pipeline;
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-kept",
        orderId: "ord-kept",
        occurredAt,
        customer: { id: "cus-kept", email: "kept.customer@example.com", name: "Kim" },
        items: [
          item("televisions", "899.00", { name: "OLED TV" }),
          item("cables", "19.00", { name: "HDMI cable" }),
        ],
      }) as never,
    );
    const ref = "evt-kept/big-ticket.thank-you";
    await eventually(
      async () =>
        (await p.store.stepRecords("evt-kept", ["big-ticket.thank-you"])).get(
          "big-ticket.thank-you",
        )?.state === "scheduled"
          ? true
          : undefined,
      "the purchase to be planned",
    );
    // The cable goes back; the TV stays, and so does its thank-you.
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-cable",
      occurredAt,
      orderId: "ord-kept",
      items: [{ sku: "SKU-CABLES", quantity: 1 }],
    } as never);
    expect(await eventProcessed(p, "ref-cable")).toBe("completed");
    const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
    const preview = await (
      await get(p, cookie, `/console/preview?ref=${encodeURIComponent(ref)}`)
    ).text();
    expect(preview).toContain(
      "As it will be rendered by email to <bdi>kept.customer@example.com</bdi>.",
    );
    expect(preview).toContain("1 x OLED TV");
    expect(preview).not.toContain("HDMI cable");
    expect(preview).toContain("Total: £899.00");

    // What the customer then gets says the same.
    await promoteStep(p, "evt-kept", "big-ticket.thank-you");
    const [sent] = await p.sink.waitForMessages(1);
    expect(sent?.parsed.text).toContain("1 x OLED TV");
    expect(sent?.parsed.text).not.toContain("HDMI cable");
    expect(sent?.parsed.text).toContain("Total: £899.00");
  });
});

describe("console actions", () => {
  it("refuse a CSRF token made for another browser, even with its cookie planted next to the operator's session", async () => {
    pipeline = await startPipeline("console-csrf", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const base = p.worker?.httpAddress ?? "";
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-csrf",
        occurredAt,
        customer: { id: "cus-csrf", email: "csrf.customer@example.com" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    const step = "big-ticket.check-in";
    const stateOf = async () => (await p.store.stepRecords("evt-csrf", [step])).get(step)?.state;
    await eventually(
      async () => ((await stateOf()) === "scheduled" ? true : undefined),
      "the purchase to be planned",
    );
    const session = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
    /** A form's CSRF cookie and token, as the page at `path` gives them to a browser. */
    const formOf = async (path: string, cookie = "") => {
      const response = await fetch(`${base}${path}`, { headers: { cookie } });
      const token = /name="_csrf" value="([^"]+)"/.exec(await response.text())?.[1] ?? "";
      const csrfCookie = response.headers.getSetCookie()[0]?.split(";")[0] ?? "";
      return { token, csrfCookie };
    };
    const cancel = (cookie: string, token: string) =>
      fetch(`${base}/console/steps/cancel`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          _csrf: token,
          ref: `evt-csrf/${step}`,
          back: "/console/search",
        }),
      });

    // Anyone gets a cookie and a token from the sign-in page; a sibling site (same-site, so the
    // SameSite cookie goes along) plants that cookie in the operator's browser and posts the token.
    const anonymous = await formOf("/console/sign-in");
    const planted = await cancel(`fu_console=${session}; ${anonymous.csrfCookie}`, anonymous.token);
    expect(planted.status).toBe(403);
    // So does one from another session's page.
    const other = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
    const theirs = await formOf("/console/failed", `fu_console=${other}`);
    const foreign = await cancel(`fu_console=${session}; ${theirs.csrfCookie}`, theirs.token);
    expect(foreign.status).toBe(403);
    expect(await stateOf()).toBe("scheduled");

    // The operator's own confirmation page's token does it.
    const own = await formOf(
      `/console/confirm?action=cancel&ref=${encodeURIComponent(`evt-csrf/${step}`)}`,
      `fu_console=${session}`,
    );
    const done = await cancel(`fu_console=${session}; ${own.csrfCookie}`, own.token);
    expect(done.status).toBe(303);
    expect(await stateOf()).toBe("cancelled");
  });
});

describe("console audit trail", () => {
  it("pages through every entry, older ones behind a link, none lost or shown twice", async () => {
    pipeline = await startPipeline("console-audit", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    // 1,203 actions: a retry of many failed steps records them all in one millisecond, and such
    // a millisecond falls across the end of a page.
    const trail = new AuditTrail(p.redis, p.prefix);
    const at = Date.now() - 60_000;
    const targets: string[] = [];
    for (let i = 0; i < 1203; i++) {
      const target = `evt-${i}/big-ticket.thank-you`;
      targets.push(target);
      await trail.record({ at: at + Math.floor(i / 7), by: "dana", action: "retry", target });
    }
    const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
    const seen: string[] = [];
    let path: string | undefined = "/console/audit";
    for (let pages = 0; path !== undefined && pages < 10; pages++) {
      const response = await get(p, cookie, path);
      expect(response.status).toBe(200);
      const html = await response.text();
      seen.push(
        ...[...html.matchAll(/<td><bdi>(evt-\d+\/big-ticket\.thank-you)<\/bdi><\/td>/g)].map(
          (m) => m[1] ?? "",
        ),
      );
      const older = /<a href="([^"]+)"[^>]*>Older entries/.exec(html)?.[1];
      path = older?.replaceAll("&amp;", "&");
    }
    expect(seen).toHaveLength(targets.length);
    expect(new Set(seen).size).toBe(targets.length);
    expect(new Set(seen)).toEqual(new Set(targets));
  });
});

describe("console timeline of a customer with many purchases", () => {
  it("says how many purchases it does not list, and how to find one of them", async () => {
    pipeline = await startPipeline("console-many", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const start = DateTime.utc().startOf("second").minus({ hours: 2 });
    const count = 102;
    for (let i = 0; i < count; i++)
      await p.publisher.publish(
        purchaseInput({
          id: `evt-many-${i}`,
          orderId: `ord-many-${i}`,
          occurredAt: start.plus({ seconds: i }).toISO({ suppressMilliseconds: true }) ?? "",
          customer: { id: "cus-many" },
          items: [item("televisions", "899.00")],
        }) as never,
      );
    for (let i = 0; i < count; i++) await eventProcessed(p, `evt-many-${i}`);
    const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
    const response = await get(p, cookie, "/console/customers/cus-many");
    expect(response.status).toBe(200);
    const html = await response.text();
    // The latest 100, the first two (still pending) left out: the page says so.
    expect([...html.matchAll(/<h2 id="p\d+">Purchase/g)]).toHaveLength(100);
    expect(html).not.toContain("evt-many-0<");
    expect(html).toContain(
      'The latest 100 purchases of 102: 2 older ones are not listed here. <a href="/console/search">Search</a> for an older one by its order id.',
    );
  }, 120_000);
});

describe("console order page", () => {
  it("names the zone of the time a purchase arrived after its order's full refund", async () => {
    pipeline = await startPipeline("console-order", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-whole",
      occurredAt,
      orderId: "ord-whole",
    } as never);
    expect(await eventProcessed(p, "ref-whole")).toBe("completed");
    await p.publisher.publish(
      purchaseInput({
        id: "evt-late",
        orderId: "ord-whole",
        occurredAt,
        customer: { id: "cus-late" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-late")).toBe("completed");
    const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
    const response = await get(p, cookie, "/console/orders/ord-whole");
    expect(response.status).toBe(200);
    const html = await response.text();
    const arrived =
      /purchase <bdi>evt-late<\/bdi> arrived <time datetime="([^"]+)">([^<]+)<\/time>/.exec(html);
    // Shown in UTC, as the console's other times, and saying so.
    const shown = DateTime.fromISO(arrived?.[1] ?? "", { zone: "utc" }).toFormat(
      "yyyy-MM-dd HH:mm",
    );
    expect(arrived?.[2]).toBe(`${shown} UTC`);
  });
});

describe("console failed follow-ups", () => {
  it("retry all retries those the page showed, not a failure that came after it", async () => {
    pipeline = await startPipeline("console-retry-all", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const base = p.worker?.httpAddress ?? "";
    const step = "big-ticket.thank-you";
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    const failOne = async (n: number) => {
      await p.publisher.publish(
        purchaseInput({
          id: `evt-fail-${n}`,
          occurredAt,
          customer: { id: `cus-fail-${n}`, email: `fail.${n}@example.com` },
          items: [item("televisions", "899.00")],
        }) as never,
      );
      p.sink.failNext({ code: 550, message: "mailbox unavailable" });
      await promoteStep(p, `evt-fail-${n}`, step);
      await eventually(
        async () =>
          (await p.store.stepRecords(`evt-fail-${n}`, [step])).get(step)?.state === "failed"
            ? true
            : undefined,
        `follow-up ${n} to fail`,
      );
    };
    const stateOf = async (n: number) =>
      (await p.store.stepRecords(`evt-fail-${n}`, [step])).get(step)?.state;
    await failOne(1);
    const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
    const shown = await fetch(`${base}/console/failed`, {
      headers: { cookie: `fu_console=${cookie}` },
    });
    const html = await shown.text();
    expect(html).toContain("Retry all 1");
    const form = /<form method="post" action="\/console\/failed\/retry">([\s\S]*?)<\/form>/.exec(
      html,
    )?.[1];
    const fields = new URLSearchParams(
      [...(form ?? "").matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map(
        (m): [string, string] => [m[1] ?? "", (m[2] ?? "").replaceAll("&amp;", "&")],
      ),
    );
    const csrfCookie = shown.headers.getSetCookie()[0]?.split(";")[0] ?? "";

    // Another one fails while the operator reads the page; then they press Retry all 1.
    await failOne(2);
    const retried = await fetch(`${base}/console/failed/retry`, {
      method: "POST",
      redirect: "manual",
      headers: {
        cookie: `fu_console=${cookie}; ${csrfCookie}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: fields,
    });
    expect(retried.status).toBe(303);
    await eventually(
      async () => ((await stateOf(1)) !== "failed" ? true : undefined),
      "the follow-up shown to be retried",
    );
    expect(await stateOf(2)).toBe("failed");
  });
});

describe("console stylesheet", () => {
  it("is cached an hour, while the pages are never stored", async () => {
    pipeline = await startPipeline("console-css", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const base = p.worker?.httpAddress ?? "";
    const css = await fetch(`${base}/console/assets/console.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get("cache-control")).toBe("max-age=3600");
    const signIn = await fetch(`${base}/console/sign-in`);
    expect(signIn.headers.get("cache-control")).toBe("no-store");
  });
});
