import { describe, expect, it } from "vitest";
import { reportModelOf } from "../support/report-model.js";

/**
 * Revenue of orders a follow-up brought back, per currency, from ledger hours written by this
 * version and by versions up to 6 December 2026, which counted HUF, IDR, COP, IQD, … in other
 * minor units (README: Operations, upgrading).
 */
describe("revenue brought back", () => {
  const by = "email|thank-you|thank-you|recent";

  it("adds HUF counted in the former units (no decimals) and in ISO 4217's", () => {
    const model = reportModelOf({
      [`back|${by}`]: 3,
      // 1300 HUF, counted by a version up to 6 December 2026.
      [`backrev|${by}|HUF`]: 1300,
      // 1299.50 HUF, counted by this version.
      [`backrev4217|${by}|HUF`]: 129_950,
      // Other currencies are counted as they always were.
      [`backrev|${by}|EUR`]: 5_000,
      [`backrev|${by}|JPY`]: 1_999,
    });
    expect(model.broughtBack.revenue).toEqual([
      { currency: "EUR", amount: "50.00" },
      { currency: "HUF", amount: "2599.50" },
      { currency: "JPY", amount: "1999" },
    ]);
    expect(model.broughtBack.byRule[0]?.revenue).toEqual(model.broughtBack.revenue);
    expect(model.broughtBack.byChannelKind[0]?.revenue).toEqual(model.broughtBack.revenue);
  });

  it("reads a former IQD count (whole dinars) in fils", () => {
    const model = reportModelOf({ [`back|${by}`]: 1, [`backrev|${by}|IQD`]: 5 });
    expect(model.broughtBack.revenue).toEqual([{ currency: "IQD", amount: "5.000" }]);
  });
});
