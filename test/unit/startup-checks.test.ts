import { describe, expect, it } from "vitest";
import { marketingEmailLinkProblem } from "../../src/config/startup-checks.js";
import type { RuleSet } from "../../src/domain/rules.js";
import { shippedRules } from "../support/fixtures.js";

describe("the unsubscribe-link check for marketing email", () => {
  it.each([
    ["https://followups.shop.example", undefined],
    [
      "http://followups.shop.example",
      "PUBLIC_URL must be an https URL that reaches this service (got http://followups.shop.example): the marketing email steps accessories.discount, loyal-customer.discount carry unsubscribe links that must work for every recipient",
    ],
    [
      undefined,
      "PUBLIC_URL must be an https URL that reaches this service (it is not set): the marketing email steps accessories.discount, loyal-customer.discount carry unsubscribe links that must work for every recipient",
    ],
  ])("PUBLIC_URL %s with the shipped rules", async (publicUrl, problem) => {
    expect(marketingEmailLinkProblem(await shippedRules(), publicUrl)).toBe(problem);
  });

  it("has nothing to say when no rule sends marketing email", async () => {
    const shipped = await shippedRules();
    const transactionalOnly: RuleSet = {
      ...shipped,
      rules: shipped.rules.map((rule) => ({
        ...rule,
        steps: rule.steps.filter((step) => step.purpose !== "marketing"),
      })),
    };
    expect(marketingEmailLinkProblem(transactionalOnly, undefined)).toBeUndefined();
    expect(marketingEmailLinkProblem(transactionalOnly, "http://localhost:8080")).toBeUndefined();
  });
});
