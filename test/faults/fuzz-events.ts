import fc from "fast-check";
import { DateTime } from "luxon";
import { parseEvent } from "../../src/domain/events.js";
import { item, purchaseInput } from "../support/fixtures.js";

/**
 * Event generators for the fuzz scenario. Generators only propose; whether an event is valid is
 * decided afterwards by the contract itself (parseEvent), so a "junk" mutation that happens to
 * stay valid is simply counted and checked as valid.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const CATEGORIES = [
  "televisions",
  "laptops",
  "phones",
  "furniture",
  "newspapers",
  "snacks",
  "salon",
  "repairs",
  "kitchenware",
  "garden",
  "TELEVISIONS",
];
const CURRENCIES = [
  { code: "GBP", digits: 2 },
  { code: "EUR", digits: 2 },
  { code: "USD", digits: 2 },
  { code: "CHF", digits: 2 },
  { code: "JPY", digits: 0 },
  { code: "BHD", digits: 3 },
];
const ZONES = [
  "Europe/London",
  "Europe/Berlin",
  "America/St_Johns",
  "Asia/Kathmandu",
  "Australia/Lord_Howe",
  "Pacific/Kiritimati",
  "Pacific/Pago_Pago",
  "UTC",
];
const LOCALES = ["en", "en-GB", "de", "de-AT", "fr-CA", "ja-JP", "zz"];
/** Text that tries templates, HTML and terminals: it must come out escaped or verbatim, never run. */
const NASTY_TEXT = [
  "<script>alert(1)</script>",
  "{{ customer.email }}",
  "{% raw %}{{x}}",
  "Robert'); DROP TABLE students;--",
  "\u202eevil\u202c",
  "\u0000nul",
  "Zoë 🛋️ 家具",
  "a\r\nBcc: victim@example.com",
  "%s%n%x",
];

const text = (maxLength: number) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.string({ minLength: 1, maxLength }) },
    { weight: 2, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength }) },
    { weight: 1, arbitrary: fc.constantFrom(...NASTY_TEXT) },
  );

/** A valid-looking amount of `digits` decimals, as a string or a number. */
const amount = (digits: number) =>
  fc.tuple(fc.integer({ min: 0, max: 250_000 }), fc.boolean()).map(([minor, asNumber]) => {
    const value = (minor / 10 ** digits).toFixed(digits);
    return asNumber ? Number(value) : value;
  });

/** Phone numbers libphonenumber accepts, written in a few of the ways people write them. */
const phone = fc
  .tuple(fc.constantFrom("uk", "us"), fc.integer({ min: 0, max: 9999 }), fc.nat(2))
  .map(([country, n, style]) => {
    const d = String(n).padStart(4, "0");
    if (country === "uk") return ["+44 20 7946 ", "+4420 7946", "+44-20-7946-"][style] + d;
    return ["+1 415 555 ", "+1 (415) 555-", "+1415555"][style] + d;
  });

const email = fc
  .tuple(
    fc.stringMatching(/^[a-z0-9]{1,12}([._+-][a-z0-9]{1,8}){0,2}$/),
    fc.constantFrom("example.com", "mail.example.org", "xn--bcher-kva.example"),
  )
  .map(([local, domain]) => `${local}@${domain}`);

/** ISO instant `minutes` ago, written in a random fixed offset. */
function instantAgo(minutes: number, offsetMinutes: number): string {
  return (
    DateTime.utc()
      .minus({ minutes })
      .setZone(
        offsetMinutes === 0
          ? "UTC"
          : `UTC${offsetMinutes > 0 ? "+" : "-"}${Math.floor(Math.abs(offsetMinutes) / 60)}:${String(Math.abs(offsetMinutes) % 60).padStart(2, "0")}`,
      )
      .toISO({ suppressMilliseconds: true }) ?? ""
  );
}

const occurredRecently = fc
  .tuple(fc.integer({ min: 65, max: 175 }), fc.constantFrom(0, 60, -300, 330, 525, 840, -570))
  .map(([minutes, offset]) => instantAgo(minutes, offset));

/**
 * A purchase from one to three hours ago, meant to be valid; `index` makes its event, order and
 * customer ids unique (a fresh customer has no history, so the plan is predictable).
 */
export function validPurchase(label: string): fc.Arbitrary<(index: number) => JsonObject> {
  return fc
    .record({
      occurredAt: occurredRecently,
      suffix: fc.string({ maxLength: 12 }),
      currency: fc.constantFrom(...CURRENCIES),
      items: fc.array(
        fc.record({
          category: fc.constantFrom(...CATEGORIES),
          name: text(60),
          sku: fc.stringMatching(/^[A-Z0-9-]{1,20}$/),
          quantity: fc.integer({ min: 1, max: 20 }),
          minor: fc.integer({ min: 1, max: 150_000 }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
      name: fc.option(text(80), { nil: undefined }),
      email: fc.option(email, { nil: undefined, freq: 5 }),
      phone: fc.option(phone, { nil: undefined, freq: 3 }),
      timezone: fc.option(fc.constantFrom(...ZONES), { nil: undefined }),
      locale: fc.option(fc.constantFrom(...LOCALES), { nil: undefined }),
      consent: fc.option(
        fc.record(
          { email: fc.boolean(), sms: fc.boolean(), voice: fc.boolean() },
          { requiredKeys: [] },
        ),
        { nil: undefined },
      ),
      store: fc.option(
        fc.record({
          id: fc.stringMatching(/^st-[a-z0-9]{1,6}$/),
          name: text(40),
          timezone: fc.constantFrom(...ZONES),
        }),
        { nil: undefined },
      ),
      extra: fc.option(
        fc.dictionary(fc.stringMatching(/^x[a-zA-Z]{1,8}$/), fc.jsonValue({ maxDepth: 3 }), {
          maxKeys: 3,
        }),
        { nil: undefined },
      ),
    })
    .map((spec) => (index: number) => {
      const id = `fz-${label}-${index}~${spec.suffix}`;
      const divisor = 10 ** spec.currency.digits;
      return purchaseInput({
        id,
        orderId: `fz-${label}-order-${index}`,
        occurredAt: spec.occurredAt,
        currency: spec.currency.code,
        customer: {
          id: `fz-${label}-customer-${index}`,
          name: spec.name,
          email: spec.email,
          phone: spec.phone,
          timezone: spec.timezone,
          locale: spec.locale,
          consent: spec.consent,
        },
        items: spec.items.map((entry) =>
          item(entry.category, (entry.minor / divisor).toFixed(spec.currency.digits), {
            sku: entry.sku,
            name: entry.name,
            quantity: entry.quantity,
          }),
        ),
        ...(spec.store && { store: spec.store }),
        ...(spec.extra && { extra: spec.extra }),
      }) as JsonObject;
    });
}

/** A refund of an order no purchase of this run has, or an opt-out of a customer none has. */
export function validLifecycleEvent(label: string): fc.Arbitrary<(index: number) => JsonObject> {
  return fc.oneof(
    fc
      .record({
        occurredAt: occurredRecently,
        amount: fc.option(
          fc
            .constantFrom(...CURRENCIES)
            .chain((c) => amount(c.digits).map((value) => ({ amount: value, currency: c.code }))),
          { nil: undefined },
        ),
      })
      .map((spec) => (index: number) => ({
        type: "purchase.refunded",
        id: `fz-${label}-refund-${index}`,
        occurredAt: spec.occurredAt,
        orderId: `fz-${label}-ghost-order-${index}`,
        ...(spec.amount && { amount: spec.amount }),
      })),
    fc
      .record({
        occurredAt: occurredRecently,
        channels: fc.oneof(
          fc.constant("all" as const),
          fc.uniqueArray(fc.constantFrom("email", "sms", "voice"), { minLength: 1, maxLength: 3 }),
        ),
      })
      .map((spec) => (index: number) => ({
        type: "customer.unsubscribed",
        id: `fz-${label}-optout-${index}`,
        occurredAt: spec.occurredAt,
        customerId: `fz-${label}-ghost-customer-${index}`,
        channels: spec.channels,
      })),
  );
}

/** Paths into an event that a mutation may hit. */
const PATHS: readonly (readonly (string | number)[])[] = [
  ["type"],
  ["id"],
  ["occurredAt"],
  ["orderId"],
  ["customer"],
  ["customer", "id"],
  ["customer", "email"],
  ["customer", "phone"],
  ["customer", "timezone"],
  ["customer", "locale"],
  ["customer", "consent"],
  ["customer", "consent", "sms"],
  ["items"],
  ["items", 0],
  ["items", 0, "quantity"],
  ["items", 0, "unitPrice"],
  ["items", 0, "category"],
  ["total"],
  ["total", "amount"],
  ["total", "currency"],
  ["amount"],
  ["channels"],
  ["customerId"],
  ["store", "timezone"],
];

/** Values that break one field or another. */
const BAD_VALUES: fc.Arbitrary<Json> = fc.oneof<fc.Arbitrary<Json>[]>(
  fc.constantFrom<Json>(
    null,
    "",
    "   ",
    0,
    -1,
    1.5,
    true,
    [],
    {},
    "2026-13-45T25:61:00Z",
    "2026-01-01",
    "2026-01-01T10:00:00",
    "yesterday",
    1_767_225_600_000,
    "12345",
    "+999999999999999",
    "+44 20 7946 09581234567",
    "phone",
    "XXY",
    "eur",
    "EURO",
    "12.345",
    "-5",
    "1e3",
    "NaN",
    "Infinity",
    "999999999999999999999999",
    0.30000000000000004,
    "Mars/Olympus_Mons",
    "not a locale!",
    "purchase.complete",
    "PURCHASE.COMPLETED",
    "all ",
    ["email", "fax"],
  ),
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
  fc.integer({ min: 1_000, max: 120_000 }).map((n) => "x".repeat(n)),
  fc.integer({ min: 50, max: 3_000 }).map((depth) => nested(depth)),
  fc.integer({ min: 0, max: 600 }).map((n) => Array.from({ length: n }, () => ({ sku: "S" }))),
);

/** `depth` levels of arrays and objects, the innermost holding a string. */
function nested(depth: number): Json {
  let value: Json = "deep";
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { a: value };
  return value;
}

type Mutation =
  | { readonly kind: "delete"; readonly path: readonly (string | number)[] }
  | { readonly kind: "set"; readonly path: readonly (string | number)[]; readonly value: Json };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("delete" as const), path: fc.constantFrom(...PATHS) }),
  fc.record({
    kind: fc.constant("set" as const),
    path: fc.constantFrom(...PATHS),
    value: BAD_VALUES,
  }),
);

function applyMutation(event: JsonObject, m: Mutation): void {
  let target: Json = event;
  for (const key of m.path.slice(0, -1)) {
    const next: Json | undefined = (target as Record<string | number, Json>)?.[key];
    if (next === null || typeof next !== "object") return;
    target = next;
  }
  const last = m.path[m.path.length - 1] as string | number;
  if (target === null || typeof target !== "object") return;
  const holder = target as Record<string | number, Json>;
  if (m.kind === "delete") delete holder[last];
  // A copy: the bad values include shared constants (an array, say); set as they are, a second
  // mutation could set one inside itself (a circular event no JSON can carry) or change it for
  // every later event.
  else
    holder[last] =
      m.value !== null && typeof m.value === "object"
        ? JSON.parse(JSON.stringify(m.value))
        : m.value;
}

/**
 * Junk: arbitrary JSON, or a valid event with one to three fields broken or removed, or carrying
 * a prototype-poisoning key. A mutation that leaves the event valid is drawn again.
 */
export function junkEvent(label: string): fc.Arbitrary<(index: number) => Json> {
  return anyJunk(label).filter((make) => !parseEvent(make(0)).ok);
}

function anyJunk(label: string): fc.Arbitrary<(index: number) => Json> {
  const base = fc.oneof(
    { weight: 3, arbitrary: validPurchase(`${label}-m`) },
    { weight: 1, arbitrary: validLifecycleEvent(`${label}-m`) },
  );
  return fc.oneof(
    {
      weight: 1,
      arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value) => (_index: number) => value as Json),
    },
    {
      weight: 3,
      arbitrary: fc
        .tuple(base, fc.array(mutation, { minLength: 1, maxLength: 3 }))
        .map(([make, mutations]) => (index: number) => {
          const event = make(index);
          for (const m of mutations) applyMutation(event, m);
          return event as Json;
        }),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          base,
          fc.constantFrom("__proto__", "constructor", "prototype"),
          fc.jsonValue({ maxDepth: 2 }),
        )
        .map(([make, key, value]) => (index: number) => {
          const event = make(index);
          // Set as an own property, as JSON.parse would.
          Object.defineProperty(event, key, {
            value,
            enumerable: true,
            writable: true,
            configurable: true,
          });
          return event as Json;
        }),
    },
  );
}

/** A BullMQ job name: usually the event type, sometimes anything. */
export const jobName: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom("purchase.completed", "purchase.refunded", "customer.unsubscribed"),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);

/** Generates `count` values of `arb` from `seed`, deterministically. */
export function sampleOf<T>(arb: fc.Arbitrary<T>, count: number, seed: number): T[] {
  return fc.sample(arb, { numRuns: count, seed });
}

/** Malformed JSON bodies, each refused before the event is even looked at. */
export const malformedJson: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "{",
    "{'type':'purchase.completed'}",
    '{"type":',
    "[1,2",
    "nul",
    '{"a":1}}',
    "\u0000",
    '{"a":01}',
  ),
  fc
    .jsonValue()
    .map((value) => JSON.stringify(value).slice(0, -1))
    .filter((s) => {
      try {
        JSON.parse(s);
        return false;
      } catch {
        return s.trim() !== "";
      }
    }),
);
