import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { ConsoleSessions } from "../../src/store/console-sessions.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

/** The console's search over HTTP, signed in with a session as the sign-in page starts one. */

const TOKEN = "console-token-0123456789";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

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
    expect(unknown.body).toContain("No customer or order 100234568 is known");
    // A national number is not guessed at: numbers are looked up in international format.
    const national = await search(p, cookie, "07400 900031");
    expect(national.status).toBe(404);
    expect(national.body).toContain("Phone numbers are looked up in international format");
  });
});
