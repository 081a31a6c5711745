import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { ConsoleSessions } from "../../src/store/console-sessions.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

/** The console over HTTP, given what no page of its own would send: never a 500, never elsewhere. */

const TOKEN = "console-token-0123456789";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

/** A signed-in browser: the session's cookie, and a form's CSRF cookie and token. */
async function signedIn(p: PipelineHarness) {
  const base = p.worker?.httpAddress ?? "";
  const session = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
  const page = await fetch(`${base}/console/failed`, {
    headers: { cookie: `fu_console=${session}` },
  });
  const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? "";
  const csrfCookie = page.headers.getSetCookie()[0]?.split(";")[0] ?? "";
  const cookie = `fu_console=${session}; ${csrfCookie}`;
  return {
    base,
    get: (path: string) => fetch(`${base}${path}`, { headers: { cookie }, redirect: "manual" }),
    post: (path: string, fields: Record<string, string>) =>
      fetch(`${base}${path}`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: token, ...fields }),
      }),
  };
}

/** `count` big-ticket purchases, each with a thank-you and a check-in pending: their step refs. */
async function pendingSteps(p: PipelineHarness, count: number): Promise<string[]> {
  const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
  const refs: string[] = [];
  for (let n = 0; n < count; n++) {
    const id = `evt-odd-${n}`;
    await p.publisher.publish(
      purchaseInput({
        id,
        orderId: `ord-odd-${n}`,
        occurredAt,
        customer: { id: `cus-odd-${n}`, email: `odd.${n}@example.com` },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    for (const step of ["big-ticket.thank-you", "big-ticket.check-in"]) {
      await eventually(
        async () =>
          (await p.store.stepRecords(id, [step])).get(step)?.state === "scheduled"
            ? true
            : undefined,
        `${id} to be planned`,
      );
      refs.push(`${id}/${step}`);
    }
  }
  return refs;
}

describe("the console's way back (`back`)", () => {
  it("is percent-encoded, or the search page, never a 500 nor another site", async () => {
    pipeline = await startPipeline("console-back", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const browser = await signedIn(p);
    const cases: [back: string, location: string][] = [
      // Characters Node will not put in a header as they are (above U+00FF), and Latin-1 ones
      // it would send as single bytes, which a browser does not read back as the same path.
      ["/console/customers/cus-€漢😀", "/console/customers/cus-%E2%82%AC%E6%BC%A2%F0%9F%98%80"],
      ["/console/search?q=Łódź", "/console/search?q=%C5%81%C3%B3d%C5%BA"],
      ["/console/customers/Zoë", "/console/customers/Zo%C3%AB"],
      // An invalid UTF-16 surrogate, as a form field can carry one.
      ["/console/customers/a\ud800b", "/console/customers/a%EF%BF%BDb"],
      // Another site, however spelt: the search page instead.
      ["//evil.example/console/", "/console/search"],
      ["/\\evil.example/console/", "/console/search"],
      ["https://evil.example/console/", "/console/search"],
      ["/console/../\\evil.example", "/console/search"],
      ["/console/%2e%2e/%2e%2e//evil.example", "/console/search"],
      ["/console/%2E%2E/sign-in", "/console/search"],
      ["/%2Fevil.example", "/console/search"],
      ["/console/\u0000", "/console/search"],
      [`/console/search?q=${"x".repeat(10_000)}`, "/console/search"],
      ["", "/console/search"],
    ];
    const refs = await pendingSteps(p, Math.ceil(cases.length / 2));
    for (const [index, [back, location]] of cases.entries()) {
      const ref = refs[index] ?? "";
      const cancelled = await browser.post("/console/steps/cancel", { ref, back });
      expect(cancelled.status, back).toBe(303);
      expect(cancelled.headers.get("location"), back).toBe(location);

      const query = new URLSearchParams({ action: "cancel", ref, back });
      const confirm = await browser.get(`/console/confirm?${query}`);
      expect(confirm.status, back).toBe(200);
      const html = await confirm.text();
      const link = /<a href="([^"]*)">Go back<\/a>/.exec(html)?.[1]?.replaceAll("&amp;", "&");
      const field = /name="back" value="([^"]*)"/.exec(html)?.[1]?.replaceAll("&amp;", "&");
      // The page's own way back, and the one its form carries: the same path.
      expect(link, back).toBe(location);
      expect(field, back).toBe(location);
    }
  });
});

describe("the longest ids the contract allows", () => {
  it("open in the console and the admin API, and the console's actions come back to them", async () => {
    pipeline = await startPipeline("console-long-ids", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const p = pipeline;
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    // 200 characters (code points, as the contract counts them) of four UTF-8 bytes each: 400
    // UTF-16 units, and 2,400 characters as a percent-encoded path segment; and of three bytes.
    const ids = [
      { event: "evt-long-emoji", id: "😀".repeat(200) },
      { event: "evt-long-euro", id: "€".repeat(200) },
    ];
    for (const { event, id } of ids) {
      await p.publisher.publish(
        purchaseInput({
          id: event,
          orderId: id,
          occurredAt,
          customer: { id, email: `${event}@example.com` },
          items: [item("televisions", "899.00")],
        }) as never,
      );
      await eventually(
        async () =>
          (await p.store.stepRecords(event, ["big-ticket.check-in"])).size > 0 ? true : undefined,
        `${event} to be planned`,
      );
    }
    const browser = await signedIn(p);
    for (const { event, id } of ids) {
      const segment = encodeURIComponent(id);
      const pages = {
        customer: (await browser.get(`/console/customers/${segment}`)).status,
        order: (await browser.get(`/console/orders/${segment}`)).status,
        adminCustomer: (await adminGet(p, `/admin/v1/customers/${segment}`)).status,
        adminOrder: (await adminGet(p, `/admin/v1/orders/${segment}`)).status,
      };
      expect({ event, ...pages }).toEqual({
        event,
        customer: 200,
        order: 200,
        adminCustomer: 200,
        adminOrder: 200,
      });
      // An action taken from the customer's page comes back to it, not to the search page.
      const back = `/console/customers/${segment}`;
      const cancelled = await browser.post("/console/steps/cancel", {
        ref: `${event}/big-ticket.check-in`,
        back,
      });
      expect({ event, location: cancelled.headers.get("location") }).toEqual({
        event,
        location: back,
      });
      const optedOut = await browser.post(`/console/customers/${segment}/opt-out`, {
        "channel-email": "on",
      });
      expect({ event, location: optedOut.headers.get("location") }).toEqual({
        event,
        location: back,
      });
    }
  });
});

async function adminGet(p: PipelineHarness, path: string): Promise<Response> {
  return fetch(`${p.worker?.httpAddress}${path}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
}

describe("the erase and opt-out paths, reached without their form", () => {
  it("lead a GET to the confirmation, or to the search without a customer; a form naming none is a 400 saying so", async () => {
    pipeline = await startPipeline("console-action-paths", {
      env: { ADMIN_TOKENS: `dana:${TOKEN}` },
    });
    const p = pipeline;
    const browser = await signedIn(p);
    // A bookmark or a pasted link: the confirmation page, where the operator decides; nothing done.
    const gets: [path: string, location: string][] = [
      ["/console/customers/cus-1/erase", "/console/confirm?action=erase&customer=cus-1"],
      ["/console/customers/erase?id=..", "/console/confirm?action=erase&customer=.."],
      [
        "/console/customers/ana%20maria/opt-out",
        "/console/confirm?action=opt-out&customer=ana+maria",
      ],
      ["/console/customers/opt-out?id=%D7%9C", "/console/confirm?action=opt-out&customer=%D7%9C"],
      // No customer named: the search, to find one.
      ["/console/customers/erase", "/console/search"],
      ["/console/customers/opt-out?id=", "/console/search"],
      ["/console/customers/erase?id=%20", "/console/search"],
      // Nor a confirmation of no one.
      ["/console/confirm?action=erase&customer=", "/console/search"],
      ["/console/confirm?action=opt-out", "/console/search"],
    ];
    for (const [path, location] of gets) {
      const response = await browser.get(path);
      expect({ path, status: response.status, location: response.headers.get("location") }).toEqual(
        { path, status: 303, location },
      );
    }
    // The confirmation it leads to asks about that customer.
    const confirm = await browser.get("/console/confirm?action=erase&customer=cus-1");
    expect(await confirm.text()).toContain("Erase customer <bdi>cus-1</bdi>?");

    // A form posted without a customer (an older page's): said in words, with the way to search.
    for (const action of ["erase", "opt-out"]) {
      const response = await browser.post(`/console/customers/${action}`, {
        "channel-email": "on",
      });
      const html = await response.text();
      expect({ action, status: response.status }).toEqual({ action, status: 400 });
      expect(html).toContain(
        `names no customer to ${action === "erase" ? "erase" : "opt out"}: find them with Search`,
      );
      expect(html).toContain('<a href="/console/search">');
    }
  });
});
