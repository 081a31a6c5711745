import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { JSON_SCHEMA_FILES, renderJsonSchema } from "../../src/config/json-schemas.js";

describe("committed JSON Schema files", () => {
  it.each(Object.entries(JSON_SCHEMA_FILES))("%s matches the zod schemas", (file, build) => {
    let committed: string;
    try {
      committed = readFileSync(file, "utf8");
    } catch {
      committed = "(missing)";
    }
    expect(committed, `${file} is stale or missing: run \`npm run schema\` and commit it`).toBe(
      renderJsonSchema(build()),
    );
  });

  it("name themselves and describe the documented top-level fields", () => {
    const events = JSON.parse(readFileSync("config/schema/events.v1.schema.json", "utf8"));
    const rules = JSON.parse(readFileSync("config/schema/rules.schema.json", "utf8"));
    expect(events.$id).toBe("https://followups.dev/schema/events.v1.schema.json");
    expect(rules.$id).toBe("https://followups.dev/schema/rules.schema.json");
    expect(Object.keys(rules.properties)).toEqual(
      expect.arrayContaining(["version", "defaults", "groups", "sendWindows", "holidays", "rules"]),
    );
    expect(rules.additionalProperties).toBe(false);
    const eventTypes = (events.oneOf ?? events.anyOf).map(
      (branch: { properties: { type: { const: string } } }) => branch.properties.type.const,
    );
    expect(eventTypes).toEqual([
      "purchase.completed",
      "purchase.refunded",
      "customer.unsubscribed",
      "customer.erased",
    ]);
  });

  it("bound occurredAt's fraction to 9 digits and a currency to 3 characters, as the contract does", () => {
    const events = JSON.parse(readFileSync("config/schema/events.v1.schema.json", "utf8"));
    for (const branch of events.oneOf ?? events.anyOf) {
      const occurredAt = new RegExp(branch.properties.occurredAt.pattern);
      expect(occurredAt.test("2026-11-23T10:00:00.123456789Z")).toBe(true);
      expect(occurredAt.test("2026-11-23T11:00:00.5+01:00")).toBe(true);
      expect(occurredAt.test("2026-11-23T10:00:00.1234567890Z")).toBe(false);
    }
    const [purchase] = events.oneOf ?? events.anyOf;
    expect(purchase.properties.total.properties.currency.maxLength).toBe(3);
  });
});
