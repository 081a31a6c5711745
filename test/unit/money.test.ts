import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compareAmount,
  describeMoney,
  displayDigits,
  FORMER_MINOR_DIGITS,
  formatMinor,
  fromFormerMinor,
  isCurrencyCode,
  MAX_MAJOR_AMOUNT,
  minorDigits,
  minorUnitChanged,
  shownDigits,
  toFormerMinor,
  toMinorUnits,
} from "../../src/domain/money.js";

describe("toMinorUnits: exact conversion of decimal text", () => {
  it.each([
    ["19.99", "EUR", 1999],
    [19.99, "EUR", 1999],
    ["0.10", "GBP", 10],
    [0.1, "GBP", 10],
    ["0.20", "GBP", 20],
    [0.3, "GBP", 30],
    ["49.99", "GBP", 4999],
    [49.99, "GBP", 4999],
    ["50", "GBP", 5000],
    ["10.000", "GBP", 1000], // trailing zeros are not extra precision
    [" 5.5 ", "EUR", 550],
    ["0", "EUR", 0],
    ["1999", "JPY", 1999],
    [1999, "JPY", 1999],
    ["1999.000", "JPY", 1999],
    ["1.234", "KWD", 1234],
    ["0.5", "KWD", 500],
    [String(MAX_MAJOR_AMOUNT), "EUR", MAX_MAJOR_AMOUNT * 100],
    // ISO 4217 minor units where Intl shows fewer decimals (CLDR: none).
    ["1299.50", "HUF", 129_950],
    [1299.5, "HUF", 129_950],
    ["1300", "HUF", 130_000],
    ["5.5", "IQD", 5_500],
    ["1299.5", "COP", 129_950],
    ["15000.25", "IDR", 1_500_025],
    ["999.99", "PKR", 99_999],
  ])("%j %s → %i minor units", (amount, currency, minor) => {
    expect(toMinorUnits(amount, currency)).toEqual({ ok: true, minor });
  });

  it.each([
    ["1000.5", "JPY", "JPY has 0 decimal places, got 1000.5"],
    [1000.5, "JPY", "JPY has 0 decimal places, got 1000.5"],
    ["1.2345", "KWD", "KWD has 3 decimal places, got 1.2345"],
    ["1.005", "EUR", "EUR has 2 decimal places, got 1.005"],
    ["10.555", "GBP", "GBP has 2 decimal places, got 10.555"],
    ["5.5", "JPY", "JPY has 0 decimal places, got 5.5"],
    ["1299.505", "HUF", "HUF has 2 decimal places, got 1299.505"],
    ["5.5005", "IQD", "IQD has 3 decimal places, got 5.5005"],
    [
      0.1 + 0.2,
      "GBP",
      "expected a non-negative decimal amount such as 19.99, got 0.30000000000000004",
    ],
    ["-1", "EUR", 'expected a non-negative decimal amount such as 19.99, got "-1"'],
    [-1, "EUR", "expected a non-negative decimal amount such as 19.99, got -1"],
    ["1e3", "EUR", 'expected a non-negative decimal amount such as 19.99, got "1e3"'],
    [1e21, "EUR", "expected a non-negative decimal amount such as 19.99, got 1e+21"],
    ["12,50", "EUR", 'expected a non-negative decimal amount such as 19.99, got "12,50"'],
    [".5", "EUR", 'expected a non-negative decimal amount such as 19.99, got ".5"'],
    ["", "EUR", 'expected a non-negative decimal amount such as 19.99, got ""'],
    [
      String(MAX_MAJOR_AMOUNT + 1),
      "EUR",
      `amount ${MAX_MAJOR_AMOUNT + 1} is larger than ${MAX_MAJOR_AMOUNT}`,
    ],
  ])("%j %s → refused: %s", (amount, currency, problem) => {
    expect(toMinorUnits(amount, currency)).toEqual({ ok: false, problem });
  });

  it("0.10 + 0.20 in minor units is exactly 0.30, where floats are not", () => {
    const sum = (a: string, b: string) => {
      const x = toMinorUnits(a, "EUR");
      const y = toMinorUnits(b, "EUR");
      if (!x.ok || !y.ok) throw new Error("unreadable");
      return x.minor + y.minor;
    };
    expect(0.1 + 0.2 === 0.3).toBe(false); // the surprise we avoid
    expect(sum("0.10", "0.20")).toBe(30);
    expect(toMinorUnits("0.30", "EUR")).toEqual({ ok: true, minor: 30 });
  });

  it("round-trips every amount through formatMinor, in 0-, 2- and 3-decimal currencies", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.constantFrom("JPY", "EUR", "KWD"),
        (seed, currency) => {
          const minor = seed % (MAX_MAJOR_AMOUNT * 10 ** minorDigits(currency));
          const text = formatMinor({ minor, currency });
          expect(toMinorUnits(text, currency)).toEqual({ ok: true, minor });
        },
      ),
      { numRuns: 200 },
    );
  });

  it("orders amounts exactly as their decimal values: x.yz < a.bc ⇔ minor(x.yz) < minor(a.bc)", () => {
    const cents = fc.integer({ min: 0, max: 10_000_000 });
    fc.assert(
      fc.property(cents, cents, (a, b) => {
        const text = (c: number) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, "0")}`;
        const x = toMinorUnits(text(a), "GBP");
        const y = toMinorUnits(text(b), "GBP");
        expect(x.ok && y.ok && Math.sign(x.minor - y.minor)).toBe(Math.sign(a - b));
      }),
      { numRuns: 200 },
    );
  });
});

describe("currencies", () => {
  it.each([
    ["EUR", true],
    ["GBP", true],
    ["JPY", true],
    ["KWD", true],
    ["eur", false],
    ["EURO", false],
    ["XYZ", false],
    ["", false],
  ])("isCurrencyCode(%j) is %s", (code, known) => {
    expect(isCurrencyCode(code)).toBe(known);
  });

  it.each([
    ["EUR", 2],
    ["GBP", 2],
    ["JPY", 0],
    ["KWD", 3],
    ["BHD", 3],
    // ISO 4217's minor unit, not Intl's display digits (CLDR shows these without decimals).
    ...[..."AFN ALL COP HUF IDR IRR KPW LAK LBP MGA MMK PKR SOS SYP YER".split(" ")].map(
      (code) => [code, 2] as [string, number],
    ),
    ["IQD", 3],
    // Not in ISO 4217's list (withdrawn), or listed without a minor unit: Intl's, as before.
    ["SLL", 0],
    ["HRK", 2],
    ["XDR", 2],
    ["XAU", 2],
  ])("%s has %i decimals", (code, digits) => {
    expect(minorDigits(code)).toBe(digits);
  });

  it("changes the minor unit of only the 16 currencies whose stored amounts are converted", () => {
    // Every other currency this runtime knows keeps the digits earlier versions took from Intl,
    // so its stored amounts mean what they meant and are read as they are.
    const changed = Intl.supportedValuesOf("currency").filter(
      (code) => minorDigits(code) !== displayDigits(code),
    );
    expect(changed).toEqual([...FORMER_MINOR_DIGITS.keys()]);
    for (const code of changed) expect(FORMER_MINOR_DIGITS.get(code)).toBe(displayDigits(code));
    expect(minorUnitChanged("EUR")).toBe(false);
    expect(minorUnitChanged("JPY")).toBe(false);
    expect(minorUnitChanged("HUF")).toBe(true);
  });

  it("reads amounts stored in the former minor units in today's, and back when they fit", () => {
    expect(fromFormerMinor({ minor: 1300, currency: "HUF" })).toEqual({
      minor: 130_000,
      currency: "HUF",
    });
    expect(fromFormerMinor({ minor: 5, currency: "IQD" })).toEqual({
      minor: 5000,
      currency: "IQD",
    });
    const euros = { minor: 1999, currency: "EUR" };
    expect(fromFormerMinor(euros)).toBe(euros);
    expect(toFormerMinor({ minor: 130_000, currency: "HUF" })).toEqual({
      minor: 1300,
      currency: "HUF",
    });
    // 1299.50 HUF was refused by those versions: no former form.
    expect(toFormerMinor({ minor: 129_950, currency: "HUF" })).toBeUndefined();
    expect(toFormerMinor(euros)).toBe(euros);
  });

  it.each([
    [{ minor: 130_000, currency: "HUF" }, 0],
    [{ minor: 129_950, currency: "HUF" }, 2],
    [{ minor: 5_000, currency: "IQD" }, 0],
    [{ minor: 5_500, currency: "IQD" }, 3],
    [{ minor: 1999, currency: "JPY" }, 0],
    [{ minor: 1000, currency: "EUR" }, 2],
    [{ minor: 500, currency: "KWD" }, 3],
  ])("shows %j with %i decimals", (money, digits) => {
    expect(shownDigits(money)).toBe(digits);
  });

  it.each([
    [{ minor: 5, currency: "GBP" }, "0.05", "0.05 GBP"],
    [{ minor: 129900, currency: "GBP" }, "1299.00", "1299.00 GBP"],
    [{ minor: 1999, currency: "JPY" }, "1999", "1999 JPY"],
    [{ minor: 500, currency: "KWD" }, "0.500", "0.500 KWD"],
    [{ minor: 0, currency: "EUR" }, "0.00", "0.00 EUR"],
    [{ minor: 129_950, currency: "HUF" }, "1299.50", "1299.50 HUF"],
    [{ minor: 5_500, currency: "IQD" }, "5.500", "5.500 IQD"],
  ])("formats %j as %s", (money, plain, described) => {
    expect(formatMinor(money)).toBe(plain);
    expect(describeMoney(money)).toBe(described);
  });
});

describe("compareAmount without a rate", () => {
  const rates = { base: "GBP", toBase: new Map([["USD", "0.79"]]) };
  it("blames the order's currency when the order's currency has no rate", () => {
    expect(
      compareAmount(
        { minor: 100, currency: "JPY" },
        { values: [{ minor: 5000, currency: "GBP" }], rates },
      ),
    ).toEqual({
      ok: false,
      problem:
        "order currency JPY differs from the rule's GBP, and no rate converts it (add JPY to the threshold, or a rate under currencies.rates)",
    });
  });

  it("blames the threshold's currency when only the threshold's currency has no rate", () => {
    expect(
      compareAmount(
        { minor: 100, currency: "USD" },
        { values: [{ minor: 5000, currency: "EUR" }], rates },
      ),
    ).toEqual({
      ok: false,
      problem:
        "no rate converts the rule's EUR into GBP to compare with the order's USD (add a rate for EUR under currencies.rates, or give the threshold in GBP or USD)",
    });
  });
});
