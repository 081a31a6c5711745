import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { DateTime } from "luxon";
import { describe, expect, it } from "vitest";
import {
  customerOfEvent,
  describeProblems,
  type EventParseResult,
  eventEmailAddress,
  formatPath,
  instantMillis,
  normalizePhone,
  type ParseEventOptions,
  parseEvent,
  phoneInCountryOf,
} from "../../src/domain/events.js";
import { instant, item, purchaseInput } from "../support/fixtures.js";

/** The problems of an input that must be invalid, as `path: message` lines. */
function problemsOf(input: unknown, options?: ParseEventOptions): string[] {
  const result: EventParseResult = parseEvent(input, options);
  if (result.ok) throw new Error("expected the event to be invalid, but it is valid");
  return result.problems.map((p) => `${p.path}: ${p.message}`);
}

function parsed(input: unknown) {
  const result = parseEvent(input);
  if (!result.ok) throw new Error(describeProblems(result.problems));
  return result.event;
}

type JsonObject = Record<string, unknown>;
/** The raw JSON of a purchase, shaped just enough to edit it in a test. */
interface RawPurchase extends JsonObject {
  customer: JsonObject & { consent: JsonObject };
  items: [JsonObject, ...JsonObject[]];
  total: JsonObject;
}

/** purchaseInput with a change made to the raw JSON, for shapes the builder does not offer. */
function withRaw(change: (event: RawPurchase) => void): JsonObject {
  const event = purchaseInput() as RawPurchase;
  change(event);
  return event;
}

/** A refund of ord-1 with `fields`. */
const refundOf = (fields: JsonObject) => ({
  type: "purchase.refunded",
  id: "evt-r1",
  occurredAt: "2026-11-24T10:00:00Z",
  orderId: "ord-1",
  ...fields,
});

/** An unsubscribe of cus-1 with `fields`. */
const unsubscribeOf = (fields: JsonObject) => ({
  type: "customer.unsubscribed",
  id: "evt-u1",
  occurredAt: "2026-11-24T10:00:00Z",
  customerId: "cus-1",
  ...fields,
});

describe("valid events of all three types", () => {
  it("purchase.completed: phone to E.164, categories lower-cased, money in minor units", () => {
    const event = parsed(
      purchaseInput({
        occurredAt: "2026-11-23T14:05:00+01:00",
        customer: { phone: "+1 (415) 555-0123", locale: "de-AT" },
        items: [item("Televisions", "1299.00", { quantity: 2 }), item("cables", 9.5)],
        store: { id: "store-1", name: "Mitte", timezone: "Europe/Berlin" },
      }),
    );
    expect(event).toEqual({
      type: "purchase.completed",
      id: "evt-1",
      occurredAt: "2026-11-23T14:05:00+01:00",
      orderId: "ord-1",
      customer: {
        id: "cus-1",
        name: "Ana Novak",
        email: "ana@example.com",
        phone: "+14155550123",
        timezone: "Europe/London",
        locale: "de-AT",
        consent: { email: true, sms: true },
      },
      items: [
        {
          sku: "SKU-TELEVISIONS",
          name: "A Televisions item",
          category: "televisions",
          quantity: 2,
          unitPrice: { minor: 129900, currency: "GBP" },
        },
        {
          sku: "SKU-CABLES",
          name: "A cables item",
          category: "cables",
          quantity: 1,
          unitPrice: { minor: 950, currency: "GBP" },
        },
      ],
      total: { minor: 260750, currency: "GBP" },
      store: { id: "store-1", name: "Mitte", timezone: "Europe/Berlin" },
    });
  });

  it("every shipped example event (config/examples/*.json) is valid", () => {
    const dir = "config/examples";
    const names = readdirSync(dir).filter((name) => name.endsWith(".json"));
    expect(names).toContain("purchase-tv.json");
    for (const name of names) {
      const result = parseEvent(JSON.parse(readFileSync(path.join(dir, name), "utf8")));
      expect(result.ok ? [] : describeProblems(result.problems), name).toEqual([]);
    }
  });

  it("purchase.refunded, partial and full", () => {
    const base = {
      type: "purchase.refunded",
      id: "evt-r1",
      occurredAt: "2026-11-24T10:00:00Z",
      orderId: "ord-1",
    };
    expect(parsed({ ...base, amount: { amount: "10.50", currency: "EUR" } })).toEqual({
      ...base,
      amount: { minor: 1050, currency: "EUR" },
    });
    expect(parsed(base)).toEqual({ ...base, amount: undefined });
  });

  it("a value over its length limit, or consent that is not an object, is named in words", () => {
    expect(
      problemsOf(
        withRaw((event) => {
          event.total.amount = "1".repeat(33);
          event.customer.phone = `+44${"7".repeat(38)}`;
          event.customer.email = `${"a".repeat(60)}@${"b".repeat(200)}.example`;
          (event.customer as JsonObject).consent = null;
          event.customer.timezone = `Europe/${"B".repeat(60)}`;
        }),
      ),
    ).toEqual([
      "customer.email: expected an email address of at most 254 characters",
      "customer.phone: expected a phone number of at most 40 characters",
      "customer.timezone: expected an IANA time zone name of at most 64 characters",
      'customer.consent: expected consent as an object such as {"email": true}',
      "total.amount: expected a decimal amount of at most 32 characters",
    ]);
  });

  it("a partial refund with too many decimals is refused at amount.amount", () => {
    expect(problemsOf(refundOf({ amount: { amount: "10.5", currency: "JPY" } }))).toEqual([
      "amount.amount: JPY has 0 decimal places, got 10.5",
    ]);
  });

  it("an unsubscribe's purposes as a bare string is one problem, said once", () => {
    expect(problemsOf(unsubscribeOf({ channels: "all", purposes: "marketing" }))).toEqual([
      'purposes: expected a list of purposes: ["marketing"]',
    ]);
  });

  it("a refund amount written as a bare amount is refused with what the object holds", () => {
    expect(problemsOf(refundOf({ amount: "10.00", items: ["TV-OLED-55"] }))).toEqual([
      'amount: expected the amount refunded, an object such as {"amount": "19.99", "currency": "EUR"}, or leave it out for the whole order',
      'items[0]: expected an item handed back, an object such as {"sku": "TV-OLED-55", "quantity": 1}',
    ]);
  });

  it.each([[["sms"]], [["email", "voice"]], ["all"], [["email", "sms", "email", "voice"]]])(
    "customer.unsubscribed from %j",
    (channels) => {
      const input = {
        type: "customer.unsubscribed",
        id: "evt-u1",
        occurredAt: "2026-11-24T10:00:00Z",
        customerId: "cus-1",
        channels,
      };
      expect(parsed(input)).toEqual(input);
    },
  );

  it.each([
    [["fax"], 'channels: expected "all" or a list of one or more of email, sms and voice'],
    ["none", 'channels: expected "all" or a list of one or more of email, sms and voice'],
    [[], "channels: expected at least one channel: email, sms or voice"],
    [
      Array.from({ length: 13 }, () => "email"),
      'channels: expected "all" or a list of one or more of email, sms and voice',
    ],
  ])("customer.unsubscribed from %j is refused with what is allowed", (channels, problem) => {
    expect(problemsOf(unsubscribeOf({ channels }))).toEqual([problem]);
  });

  it("an unknown type is refused with the four types named", () => {
    expect(problemsOf({ ...purchaseInput(), type: "purchase.cancelled" })).toEqual([
      "type: expected type to be purchase.completed, purchase.refunded, customer.unsubscribed or customer.erased",
    ]);
    // Not an object at all: said as such, a list (a file's worth, say) too.
    expect(problemsOf(null)).toEqual([": expected one event, a JSON object with a type; got null"]);
    expect(problemsOf([purchaseInput()])).toEqual([
      ": expected one event, a JSON object with a type; got a list (send events one at a time)",
    ]);
    expect(problemsOf("purchase.completed")).toEqual([
      ": expected one event, a JSON object with a type; got a string",
    ]);
  });
});

describe("time zones", () => {
  it("a missing customer time zone is fine (the planner falls back)", () => {
    const event = parsed(purchaseInput({ customer: { timezone: undefined } }));
    expect(event.type === "purchase.completed" && event.customer.timezone).toBeUndefined();
  });

  it.each(["Asia/Kathmandu", "Pacific/Kiritimati", "America/New_York", "UTC"])(
    "%s is accepted",
    (timezone) => {
      const event = parsed(purchaseInput({ customer: { timezone } }));
      expect(event.type === "purchase.completed" && event.customer.timezone).toBe(timezone);
    },
  );

  it.each([
    ["Mars/Phobos", 'expected an IANA time zone name such as Europe/Berlin, got "Mars/Phobos"'],
    ["+05:45", 'expected an IANA time zone name such as Europe/Berlin, got "+05:45"'],
    ["", 'expected an IANA time zone name such as Europe/Berlin, got ""'],
    [545, "expected an IANA time zone name such as Europe/Berlin"],
  ])("customer time zone %j is refused", (timezone, message) => {
    expect(problemsOf(purchaseInput({ customer: { timezone } }))).toEqual([
      `customer.timezone: ${message}`,
    ]);
  });

  it("an invalid store time zone is reported at store.timezone", () => {
    expect(problemsOf(purchaseInput({ store: { id: "s1", timezone: "Europe/Atlantis" } }))).toEqual(
      [
        'store.timezone: expected an IANA time zone name such as Europe/Berlin, got "Europe/Atlantis"',
      ],
    );
  });
});

describe("phones", () => {
  it.each([
    ["+14155550123", "+14155550123"],
    ["+1 (415) 555-0123", "+14155550123"],
    ["+44 20 7946 0958", "+442079460958"],
    ["+49 30 901820", "+4930901820"],
    ["+977 1 4123456", "+97714123456"],
    ["  +14155550123  ", "+14155550123"],
  ])("%j is normalised to %s", (phone, e164) => {
    const event = parsed(purchaseInput({ customer: { phone } }));
    expect(event.type === "purchase.completed" && event.customer.phone).toBe(e164);
  });

  it.each([
    "0151 1234567", // national format: no country to read it in
    "12345",
    "not a phone",
    "+1 415 555",
  ])("%j is a clear error at customer.phone", (phone) => {
    expect(problemsOf(purchaseInput({ customer: { phone } }))).toEqual([
      `customer.phone: expected a valid phone number in international format, such as +14155550123, got ${JSON.stringify(phone)}`,
    ]);
  });

  it("a phone's 40 characters count the white space around it", () => {
    const phone = `${" ".repeat(30)}+14155550123\n`;
    expect(problemsOf(purchaseInput({ customer: { phone } }))).toEqual([
      "customer.phone: expected a phone number of at most 40 characters, counting the white space around it; got 12 and 31 of white space",
    ]);
    // A megabyte of it: the same one problem, and the value is not quoted.
    expect(
      problemsOf(purchaseInput({ customer: { phone: `+14155550123${" ".repeat(1_000_000)}` } })),
    ).toEqual([
      "customer.phone: expected a phone number of at most 40 characters, counting the white space around it; got 12 and 1000000 of white space",
    ]);
  });

  it("a phone sent as a number is refused with what is expected", () => {
    expect(problemsOf(purchaseInput({ customer: { phone: 14155550123 } }))).toEqual([
      "customer.phone: expected a phone number in international format, such as +14155550123",
    ]);
  });

  it("a missing phone is fine (SMS steps are skipped later, with a reason)", () => {
    const event = parsed(purchaseInput({ customer: { phone: undefined } }));
    expect(event.type === "purchase.completed" && event.customer.phone).toBeUndefined();
  });
});

describe("email addresses", () => {
  /** A purchase whose customer has `email`. */
  const withEmail = (email: string) =>
    withRaw((e) => {
      e.customer.email = email;
    });

  it.each([
    // A domain under an internationalised top-level domain (.рф, .中国), in the ASCII form a
    // checkout submits.
    "ivan@example.xn--p1ai",
    "li@shop.xn--fiqs8s",
    // Characters RFC 5322 allows in a local part, and browsers' email inputs accept.
    "ana&bob@example.com",
    "orders=ana@example.com",
    "ana#1@example.com",
    "ana!shop@example.com",
    "{ana}@example.com",
    "~ana@example.com",
  ])("%s is taken as written", (email) => {
    expect(parsed(withEmail(email))).toMatchObject({ customer: { email } });
  });

  it.each([
    "ana.example.com",
    "ana@localhost",
    ".ana@example.com",
    "ana.@example.com",
    "ana..b@example.com",
    '"ana b"@example.com',
    "ana b@example.com",
    "ana@exa_mple.com",
    "ana@example.com ",
    "ana@-example.com",
  ])("%s is refused", (email) => {
    expect(problemsOf(withEmail(email))).toEqual([
      "customer.email: expected an email address such as ana@example.com",
    ]);
  });
});

describe("discount codes", () => {
  const withCodes = (codes: unknown[]) =>
    withRaw((e) => {
      e.discountCodes = codes;
    });

  it("the shop's own codes, of any characters, do not make the purchase invalid", () => {
    // Codes of other campaigns on the order are unknown to the worker and redeem nothing.
    const codes = ["SUMMER_SALE", "10%OFF", "ÉTÉ2026", "WELCOME!", "THANKS-7KQ2-M9XD-4TBW"];
    expect(parsed(withCodes(codes))).toMatchObject({ discountCodes: codes });
  });

  it("an empty or blank code, or one over 64 characters, is refused at its path", () => {
    expect(problemsOf(withCodes(["", "   ", "X".repeat(65), "OK"]))).toEqual([
      "discountCodes[0]: expected a discount code of 1 to 64 characters",
      "discountCodes[1]: expected a discount code of 1 to 64 characters",
      "discountCodes[2]: expected a discount code of 1 to 64 characters",
    ]);
  });
});

describe("currencies and money", () => {
  it.each([
    ["EURO", 'total.currency: expected an ISO 4217 currency code such as EUR or USD, got "EURO"'],
    ["eur", 'total.currency: expected an ISO 4217 currency code such as EUR or USD, got "eur"'],
    ["XYZ", 'total.currency: expected an ISO 4217 currency code such as EUR or USD, got "XYZ"'],
  ])("currency %j is refused", (currency, problem) => {
    expect(problemsOf(purchaseInput({ currency, items: [item("tea", "5.00")] }))).toEqual([
      problem,
    ]);
  });

  it("a long currency is refused by its length, not quoted whole", () => {
    const currency = "E".repeat(10_000);
    expect(problemsOf(purchaseInput({ currency, items: [item("tea", "5.00")] }))).toEqual([
      "total.currency: expected an ISO 4217 currency code such as EUR or USD, got 10000 characters",
    ]);
  });

  it("JPY with decimals is refused in the total and in every unit price", () => {
    expect(
      problemsOf(
        purchaseInput({ currency: "JPY", items: [item("tea", "1000.5")], total: "1000.5" }),
      ),
    ).toEqual([
      "total.amount: JPY has 0 decimal places, got 1000.5",
      "items[0].unitPrice: JPY has 0 decimal places, got 1000.5",
    ]);
  });

  it("JPY without decimals and KWD with three decimals are fine", () => {
    const yen = parsed(purchaseInput({ currency: "JPY", items: [item("tea", 1500)] }));
    expect(yen.type === "purchase.completed" && yen.total).toEqual({
      minor: 1500,
      currency: "JPY",
    });
    const dinar = parsed(purchaseInput({ currency: "KWD", items: [item("tea", "1.234")] }));
    expect(dinar.type === "purchase.completed" && dinar.total).toEqual({
      minor: 1234,
      currency: "KWD",
    });
  });

  it("KWD with four decimals is refused", () => {
    expect(
      problemsOf(
        purchaseInput({ currency: "KWD", items: [item("tea", "1.000")], total: "1.2345" }),
      ),
    ).toEqual(["total.amount: KWD has 3 decimal places, got 1.2345"]);
  });

  it("49.99 as a number and as a string are the same 4999 minor units, just under 5000", () => {
    for (const amount of [49.99, "49.99"]) {
      const event = parsed(purchaseInput({ items: [item("tea", amount)], total: amount }));
      expect(event.type === "purchase.completed" && event.total.minor).toBe(4999);
    }
  });

  it("a float artefact such as 0.1 + 0.2 is refused, not rounded", () => {
    expect(problemsOf(purchaseInput({ items: [item("tea", "0.30")], total: 0.1 + 0.2 }))).toEqual([
      "total.amount: expected a non-negative decimal amount such as 19.99, got 0.30000000000000004",
    ]);
  });

  it("a negative or non-numeric amount is refused with the path", () => {
    expect(problemsOf(purchaseInput({ items: [item("tea", "-1.00")], total: "ten" }))).toEqual([
      'total.amount: expected a non-negative decimal amount such as 19.99, got "ten"',
      'items[0].unitPrice: expected a non-negative decimal amount such as 19.99, got "-1.00"',
    ]);
    expect(
      problemsOf(purchaseInput({ items: [item("tea", "1.00")], total: true as never })),
    ).toEqual([
      "total.amount: expected a non-negative decimal amount such as 19.99 (a number or a decimal string)",
    ]);
  });

  it("a bad amount is listed with every other problem of the event, not only once the rest is valid", () => {
    // A publisher corrects an event from one refusal: the amounts are checked, as the rest is,
    // whatever else is wrong with it.
    const event = withRaw((e) => {
      e.customer.phone = "12345";
      e.total.amount = "ten";
      (e.items[0] as JsonObject).unitPrice = "1.999";
    });
    expect(problemsOf(event)).toEqual([
      'customer.phone: expected a valid phone number in international format, such as +14155550123, got "12345"',
      'total.amount: expected a non-negative decimal amount such as 19.99, got "ten"',
      "items[0].unitPrice: GBP has 2 decimal places, got 1.999",
    ]);
    // An empty list of items and a bad total: both.
    const empty = withRaw((e) => {
      (e as JsonObject).items = [];
      e.total.amount = "x";
    });
    expect(problemsOf(empty)).toEqual([
      "items: expected at least one item",
      'total.amount: expected a non-negative decimal amount such as 19.99, got "x"',
    ]);
    // A refund's amount too, beside a bad order id.
    expect(
      problemsOf({
        type: "purchase.refunded",
        id: "evt-r",
        occurredAt: "2026-11-23T10:00:00Z",
        orderId: "",
        amount: { amount: "1.5.0", currency: "EUR" },
      }),
    ).toEqual([
      expect.stringMatching(/^orderId: /),
      'amount.amount: expected a non-negative decimal amount such as 19.99, got "1.5.0"',
    ]);
  });
});

describe("bounds and wrong types", () => {
  it.each([
    [
      "an order id of 201 characters",
      withRaw((e) => {
        e.orderId = "x".repeat(201);
      }),
      "orderId: expected an order id of at most 200 characters",
    ],
    [
      "an empty SKU",
      withRaw((e) => {
        e.items[0].sku = "";
      }),
      "items[0].sku: expected a SKU, got an empty string",
    ],
    [
      "a blank customer id",
      withRaw((e) => {
        e.customer.id = "   ";
      }),
      "customer.id: expected a customer id, got an empty string",
    ],
    [
      "a category of 101 characters",
      withRaw((e) => {
        e.items[0].category = "c".repeat(101);
      }),
      "items[0].category: expected a category name of at most 100 characters",
    ],
    [
      "no items",
      withRaw((e) => {
        Object.assign(e, { items: [] });
      }),
      "items: expected at least one item",
    ],
    [
      "501 items",
      withRaw((e) => {
        Object.assign(e, { items: Array.from({ length: 501 }, () => e.items[0]) });
      }),
      "items: expected at most 500 items",
    ],
    [
      "half a TV",
      withRaw((e) => {
        e.items[0].quantity = 0.5;
      }),
      "items[0].quantity: expected a whole number of items from 1 to 100000",
    ],
    [
      "no TV at all",
      withRaw((e) => {
        e.items[0].quantity = 0;
      }),
      "items[0].quantity: expected a whole number of items from 1 to 100000",
    ],
    [
      "a hundred thousand and one TVs",
      withRaw((e) => {
        e.items[0].quantity = 100_001;
      }),
      "items[0].quantity: expected a whole number of items from 1 to 100000",
    ],
    [
      "an occurredAt without an offset",
      withRaw((e) => {
        e.occurredAt = "2026-11-23T10:00:00";
      }),
      "occurredAt: expected an ISO-8601 date-time with an offset, such as 2026-11-23T14:05:00+01:00 or …Z",
    ],
    [
      "consent as a string",
      withRaw((e) => {
        e.customer.consent.email = "yes";
      }),
      'customer.consent.email: expected true or false, got "yes"',
    ],
    [
      "an email without an @",
      withRaw((e) => {
        e.customer.email = "ana.example.com";
      }),
      "customer.email: expected an email address such as ana@example.com",
    ],
    [
      "a made-up locale",
      withRaw((e) => {
        e.customer.locale = "not a locale!";
      }),
      'customer.locale: expected a BCP 47 locale such as en or de-AT, got "not a locale!"',
    ],
    [
      "a locale of 36 characters",
      withRaw((e) => {
        e.customer.locale = `en-${"x".repeat(33)}`;
      }),
      "customer.locale: expected a BCP 47 locale of at most 35 characters",
    ],
    // The objects' own words, not zod's "Invalid input: expected object, received undefined".
    [
      "no customer",
      withRaw((e) => {
        delete (e as JsonObject).customer;
      }),
      'customer: expected the customer, an object such as {"id": "cus-1", "email": "ana@example.com"}',
    ],
    [
      "a total that is a bare amount",
      withRaw((e) => {
        e.total = "19.99" as never;
      }),
      'total: expected the total, an object such as {"amount": "19.99", "currency": "EUR"}',
    ],
    [
      "an item that is a SKU",
      withRaw((e) => {
        e.items[0] = "TV-OLED-55" as never;
      }),
      "items[0]: expected an item, an object with sku, name, category, quantity and unitPrice",
    ],
    [
      "a store that is its name",
      withRaw((e) => {
        e.store = "Camden";
      }),
      'store: expected the store, an object such as {"id": "store-1", "timezone": "Europe/London"}',
    ],
    [
      "a quantity written as text",
      withRaw((e) => {
        e.items[0].quantity = "2" as never;
      }),
      'items[0].quantity: expected a whole number of items from 1 to 100000, got the text "2": write the number without quotes',
    ],
    [
      "a quantity in words",
      withRaw((e) => {
        e.items[0].quantity = "two" as never;
      }),
      'items[0].quantity: expected a whole number of items from 1 to 100000, got "two"',
    ],
    [
      "a refund's quantity written as text",
      refundOf({ orderId: "ord-1", items: [{ sku: "TV", quantity: " 1 " }] }),
      'items[0].quantity: expected a whole number of items from 1 to 100000, got the text " 1 ": write the number without quotes',
    ],
    [
      "consent written as text",
      withRaw((e) => {
        e.customer.consent = { email: "true", sms: "FALSE" };
      }),
      'customer.consent.email: expected true or false, got the text "true": write it without quotes',
      'customer.consent.sms: expected true or false, got "FALSE"',
    ],
  ])("%s is refused with its path and what is allowed", (_, input, ...problems) => {
    expect(problemsOf(input)).toEqual(problems);
  });

  it("reports every wrong type at once, each with its path and expectation", () => {
    const input = withRaw((e) => {
      e.id = 42;
      e.occurredAt = "yesterday";
      Object.assign(e, { customer: { id: "" }, items: "a TV" });
    });
    expect(problemsOf(input)).toEqual([
      "id: expected a unique event id (a string)",
      "occurredAt: expected an ISO-8601 date-time with an offset, such as 2026-11-23T14:05:00+01:00 or …Z",
      "customer.id: expected a customer id, got an empty string",
      "items: expected a list of items",
    ]);
  });

  it("describeProblems writes one line per problem, `(event)` for the event itself", () => {
    expect(
      describeProblems([
        { path: "items[0].unitPrice", message: "EUR has 2 decimal places, got 1.999" },
        { path: "", message: "expected an object" },
      ]),
    ).toBe("items[0].unitPrice: EUR has 2 decimal places, got 1.999\n(event): expected an object");
    expect(formatPath(["items", 0, "unitPrice"])).toBe("items[0].unitPrice");
    expect(formatPath([])).toBe("");
  });
});

describe("text bounds count the white space around a value", () => {
  it("a trailing newline or a few spaces around a value pass, and are trimmed", () => {
    const event = parsed(
      withRaw((e) => {
        e.orderId = "ord-1\n";
        e.customer.id = "  cus-1 ";
        e.customer.name = "\tAna Novak\r\n";
        e.items[0].sku = `${"S".repeat(198)}\r\n`;
        e.items[0].category = " Kitchenware\n";
      }),
    );
    expect(event.type === "purchase.completed" && event).toMatchObject({
      orderId: "ord-1",
      customer: { id: "cus-1", name: "Ana Novak" },
      items: [{ sku: "S".repeat(198), category: "kitchenware" }],
    });
  });

  const padded = (value: string, around: number) =>
    `${" ".repeat(around)}${value}${"\n".repeat(around)}`;
  /** The refusal of a text at `path` that its white space makes too long. */
  const withSpace = (path: string, what: string, max: number, kept: number, around: number) =>
    `${path}: expected ${what} of at most ${max} characters, counting the white space around it; got ${kept} and ${around} of white space`;

  it.each([
    ["customer.id", "a customer id", 200, (e: RawPurchase, v: string) => (e.customer.id = v)],
    [
      "customer.name",
      "the customer's name",
      200,
      (e: RawPurchase, v: string) => (e.customer.name = v),
    ],
    ["items[0].sku", "a SKU", 200, (e: RawPurchase, v: string) => (e.items[0].sku = v)],
    ["items[0].name", "an item name", 300, (e: RawPurchase, v: string) => (e.items[0].name = v)],
    [
      "items[0].category",
      "a category name",
      100,
      (e: RawPurchase, v: string) => (e.items[0].category = v),
    ],
    ["store.id", "a store id", 200, (e: RawPurchase, v: string) => (e.store = { id: v })],
    [
      "store.name",
      "a store name",
      200,
      (e: RawPurchase, v: string) => (e.store = { id: "s", name: v }),
    ],
  ])(
    "%s: one character in white space past its bound is refused, the white space named",
    (path, what, max, set) => {
      expect(problemsOf(withRaw((e) => set(e, padded("x", max / 2))))).toEqual([
        withSpace(path, what, max, 1, max),
      ]);
    },
  );

  it("an event id in a megabyte of spaces, or an order id of 200 characters and a newline, is refused", () => {
    expect(problemsOf(withRaw((e) => (e.id = padded("evt-1", 500_000))))).toEqual([
      withSpace("id", "a unique event id", 200, 5, 1_000_000),
    ]);
    expect(problemsOf(withRaw((e) => (e.orderId = `${"o".repeat(200)}\n`)))).toEqual([
      withSpace("orderId", "an order id", 200, 200, 1),
    ]);
  });

  it("counts a text's characters as the bound does, an emoji as one: 150 emoji in 60 spaces are 150 and 60 of white space", () => {
    expect(problemsOf(withRaw((e) => (e.customer.id = padded("🎉".repeat(150), 30))))).toEqual([
      withSpace("customer.id", "a customer id", 200, 150, 60),
    ]);
  });

  it("a refunded item's SKU and an opt-out's customer id count their white space too", () => {
    expect(problemsOf(refundOf({ items: [{ sku: padded("SKU-1", 100), quantity: 1 }] }))).toEqual([
      withSpace("items[0].sku", "a SKU", 200, 5, 200),
    ]);
    const optOut = unsubscribeOf({ customerId: padded("cus-1", 100), channels: "all" });
    expect(problemsOf(optOut)).toEqual([withSpace("customerId", "a customer id", 200, 5, 200)]);
  });

  it("a value too long without its white space is refused as too long, once", () => {
    expect(
      problemsOf(
        withRaw((e) => {
          e.orderId = padded("o".repeat(300), 2);
        }),
      ),
    ).toEqual(["orderId: expected an order id of at most 200 characters"]);
  });

  it("an over-long email address is one problem, not also one of its form", () => {
    expect(
      problemsOf(
        withRaw((e) => {
          e.customer.email = "a".repeat(1_000_000);
        }),
      ),
    ).toEqual(["customer.email: expected an email address of at most 254 characters"]);
  });
});

describe("occurredAt: at most 9 digits of a second's fraction", () => {
  it.each([
    "2026-11-23T10:00:00.5Z",
    "2026-11-23T10:00:00.123Z",
    "2026-11-23T10:00:00.123456Z",
    "2026-11-23T10:00:00.123456789Z",
    "2026-11-23T11:00:00.123456789+01:00",
  ])("%s is accepted, as written", (occurredAt) => {
    expect(parsed(purchaseInput({ occurredAt })).occurredAt).toBe(occurredAt);
  });

  const tooMany = (digits: number) =>
    `occurredAt: expected an ISO-8601 date-time with at most 9 digits after the decimal point of the seconds (nanoseconds), got ${digits}`;

  it.each([
    ["10 digits", "2026-11-23T10:00:00.1234567890Z", tooMany(10)],
    ["10 digits and an offset", "2026-11-23T11:00:00.1234567890+01:00", tooMany(10)],
    ["a million digits", `2026-11-23T10:00:00.${"0".repeat(1_000_000)}Z`, tooMany(1_000_000)],
    // Said for its digits, not quoted whole as an instant before 2000.
    ["50 digits in 1999", `1999-12-31T23:59:59.${"0".repeat(50)}Z`, tooMany(50)],
    // Malformed otherwise: the format's own words, whatever its fraction.
    [
      "10 digits and no offset",
      "2026-11-23T10:00:00.1234567890",
      "occurredAt: expected an ISO-8601 date-time with an offset, such as 2026-11-23T14:05:00+01:00 or …Z",
    ],
  ])("%s is refused", (_, occurredAt, problem) => {
    expect(problemsOf(purchaseInput({ occurredAt }))).toEqual([problem]);
  });

  it("too many digits in the future is one problem, its digits", () => {
    expect(
      problemsOf(purchaseInput({ occurredAt: "2031-05-01T10:00:00.0000000001Z" }), {
        now: instant("2026-12-01T12:00:00Z"),
      }),
    ).toEqual([tooMany(10)]);
  });
});

describe("occurredAt: not before 2000, not more than a day after the receiver's clock", () => {
  const now = instant("2026-12-01T12:00:00Z");
  const refund = (occurredAt: string) => ({
    type: "purchase.refunded",
    id: "evt-r1",
    occurredAt,
    orderId: "ord-1",
  });
  const unsubscribe = (occurredAt: string) => ({
    type: "customer.unsubscribed",
    id: "evt-u1",
    occurredAt,
    customerId: "cus-1",
    channels: "all",
  });
  const purchase = (occurredAt: string) => purchaseInput({ occurredAt });

  it.each([
    ["exactly 24 h after now", purchase("2026-12-02T12:00:00Z"), now],
    ["24 h after now, written with another offset", purchase("2026-12-02T13:00:00+01:00"), now],
    ["a year ago", purchase("2025-12-01T12:00:00Z"), now],
    ["the first second of 2000", purchase("2000-01-01T00:00:00Z"), now],
    [
      "far in the future, without a now (no future bound)",
      purchase("2031-05-01T10:00:00Z"),
      undefined,
    ],
    ["a refund exactly 24 h after now", refund("2026-12-02T12:00:00Z"), now],
    ["an opt-out exactly 24 h after now", unsubscribe("2026-12-02T12:00:00Z"), now],
  ])("%s is accepted", (_, input, at) => {
    expect(parseEvent(input, { now: at })).toMatchObject({ ok: true });
  });

  it.each([
    [
      "24 h and 1 s after now",
      purchase("2026-12-02T12:00:01Z"),
      now,
      "occurredAt: 2026-12-02T12:00:01Z is more than a day after now (2026-12-01T12:00:00Z); expected the time the purchase happened",
    ],
    [
      "years after now",
      purchase("2031-05-01T10:00:00Z"),
      now,
      "occurredAt: 2031-05-01T10:00:00Z is more than a day after now (2026-12-01T12:00:00Z); expected the time the purchase happened",
    ],
    [
      "24 h and 1 s after now, written with another offset",
      purchase("2026-12-02T08:00:01-04:00"),
      now,
      "occurredAt: 2026-12-02T08:00:01-04:00 is more than a day after now (2026-12-01T12:00:00Z); expected the time the purchase happened",
    ],
    [
      "the last second of 1999",
      purchase("1999-12-31T23:59:59Z"),
      now,
      "occurredAt: 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z; expected the time the purchase happened",
    ],
    [
      "the last second of 1999, without a now",
      purchase("1999-12-31T23:59:59Z"),
      undefined,
      "occurredAt: 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z; expected the time the purchase happened",
    ],
    [
      "00:30 on 1 January 2000 in Berlin (still 1999 in UTC)",
      purchase("2000-01-01T00:30:00+01:00"),
      undefined,
      "occurredAt: 2000-01-01T00:30:00+01:00 is before 2000-01-01T00:00:00Z; expected the time the purchase happened",
    ],
    [
      "the Unix epoch",
      purchase("1970-01-01T00:00:00Z"),
      now,
      "occurredAt: 1970-01-01T00:00:00Z is before 2000-01-01T00:00:00Z; expected the time the purchase happened",
    ],
    [
      "a refund 24 h and 1 s after now",
      refund("2026-12-02T12:00:01Z"),
      now,
      "occurredAt: 2026-12-02T12:00:01Z is more than a day after now (2026-12-01T12:00:00Z); expected the time the refund happened",
    ],
    [
      "a refund in 1999",
      refund("1999-12-31T23:59:59Z"),
      now,
      "occurredAt: 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z; expected the time the refund happened",
    ],
    [
      "an opt-out 24 h and 1 s after now",
      unsubscribe("2026-12-02T12:00:01Z"),
      now,
      "occurredAt: 2026-12-02T12:00:01Z is more than a day after now (2026-12-01T12:00:00Z); expected the time the customer unsubscribed",
    ],
    [
      "an opt-out in 1999",
      unsubscribe("1999-12-31T23:59:59Z"),
      now,
      "occurredAt: 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z; expected the time the customer unsubscribed",
    ],
  ])("%s is refused at occurredAt", (_, input, at, problem) => {
    expect(problemsOf(input, { now: at })).toEqual([problem]);
  });

  it("now is shown as given, with its offset and milliseconds", () => {
    expect(
      problemsOf(purchase("2026-12-03T00:00:00Z"), {
        now: instant("2026-12-01T13:00:00.250+01:00"),
      }),
    ).toEqual([
      "occurredAt: 2026-12-03T00:00:00Z is more than a day after now (2026-12-01T13:00:00.250+01:00); expected the time the purchase happened",
    ]);
  });

  it("a future occurredAt is reported together with the other problems, once", () => {
    const input = withRaw((e) => {
      e.occurredAt = "2031-05-01T10:00:00Z";
      e.orderId = "";
    });
    expect(problemsOf(input, { now })).toEqual([
      "orderId: expected an order id, got an empty string",
      "occurredAt: 2031-05-01T10:00:00Z is more than a day after now (2026-12-01T12:00:00Z); expected the time the purchase happened",
    ]);
    // A malformed occurredAt is reported by its format alone, not also as "after now".
    expect(problemsOf(purchase("2031-05-01"), { now })).toEqual([
      "occurredAt: expected an ISO-8601 date-time with an offset, such as 2026-11-23T14:05:00+01:00 or …Z",
    ]);
  });
});

describe("publishers evolve: unknown fields", () => {
  it("are tolerated at every level and dropped", () => {
    const input = withRaw((e) => {
      e.channelHint = "web";
      e.customer.loyaltyTier = "gold";
      e.items[0].colour = "black";
      e.total.taxIncluded = true;
    });
    const event = parsed(input);
    expect(event).not.toHaveProperty("channelHint");
    expect(event.type === "purchase.completed" && event.customer).not.toHaveProperty("loyaltyTier");
    expect(event.type === "purchase.completed" && event.items[0]).not.toHaveProperty("colour");
    expect(event.type === "purchase.completed" && event.total).toEqual({
      minor: 7500,
      currency: "GBP",
    });
  });
});

describe("instantMillis", () => {
  const two = (n: number) => String(n).padStart(2, "0");
  /** occurredAt strings in the forms the schema accepts: any fraction length, Z or ±HH:MM. */
  const occurredAtArb = fc
    .record({
      at: fc.integer({ min: Date.UTC(1, 0, 1), max: Date.UTC(9999, 11, 31) }),
      fraction: fc.stringMatching(/^[0-9]{0,9}$/),
      offsetMinutes: fc.option(fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 })),
    })
    .map(({ at, fraction, offsetMinutes }) => {
      const base = new Date(at).toISOString().slice(0, 19);
      const offset =
        offsetMinutes === null
          ? "Z"
          : `${offsetMinutes < 0 ? "-" : "+"}${two(Math.floor(Math.abs(offsetMinutes) / 60))}:${two(Math.abs(offsetMinutes) % 60)}`;
      return `${base}${fraction ? `.${fraction}` : ""}${offset}`;
    });

  it("reads every occurredAt the schema accepts as the same instant luxon reads", () => {
    fc.assert(
      fc.property(occurredAtArb, (text) => {
        expect(parseEvent(purchaseInput({ occurredAt: text })).ok || text < "2000").toBe(true);
        expect(instantMillis(text)).toBe(DateTime.fromISO(text, { setZone: true }).toMillis());
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("phone numbers outside events (operator tools, erasure)", () => {
  it.each([
    ["+44 20 7946 0958", "+442079460958"],
    ["  +14155550123 ", "+14155550123"],
    // Not a valid number: too short, no such country, or no country code to read it by.
    ["+1 555 0100", undefined],
    ["+44 20 7946 095", undefined],
    ["020 7946 0958", undefined],
  ])("normalizePhone(%j) → %j", (raw, expected) => {
    expect(normalizePhone(raw)).toBe(expected);
  });

  it.each([
    // Written without its country code: read in the known number's country.
    ["020 7946 0958", "+442079460958", "+442079460958"],
    [" 020 7946 0959 ", "+442079460958", "+442079460959"],
    ["(415) 555-0123", "+14155550124", "+14155550123"],
    // The same digits are no valid number in another country.
    ["020 7946 0958", "+14155550123", undefined],
    ["(415) 555-0123", "+442079460958", undefined],
    // A known value that is not a number names no country.
    ["020 7946 0958", "ana@example.com", undefined],
  ])("phoneInCountryOf(%j, %j) → %j", (raw, known, expected) => {
    expect(phoneInCountryOf(raw, known)).toBe(expected);
  });
});

describe("customerOfEvent: whose shard an event belongs to", () => {
  it.each([
    ["a purchase", "cus-1", purchaseInput()],
    ["an unsubscribe", "cus-1", unsubscribeOf({ channels: "all" })],
    [
      "an erasure",
      "cus-9",
      {
        type: "customer.erased",
        id: "e1",
        occurredAt: "2026-11-24T10:00:00Z",
        customerId: "cus-9",
      },
    ],
    // A refund names an order, not a customer.
    ["a refund", undefined, refundOf({})],
  ])("%s → %j", (_, expected, input) => {
    expect(customerOfEvent(parsed(input))).toBe(expected);
  });
});

describe("eventEmailAddress", () => {
  it("gives an address as events carry it: an internationalised domain in its ASCII form, an ASCII one as typed", () => {
    expect(eventEmailAddress(" Ana@Bücher.de ")).toBe("Ana@xn--bcher-kva.de");
    expect(eventEmailAddress("ana@xn--zz.com")).toBe("ana@xn--zz.com");
    expect(eventEmailAddress("ana@example.com")).toBe("ana@example.com");
  });

  it("refuses what no event could carry", () => {
    for (const typed of [
      "<ana@example.com>",
      "ana@example",
      "@example.com",
      "anä@example.com",
      "ana@exa mple.com",
    ])
      expect(eventEmailAddress(typed), typed).toBeUndefined();
  });
});
