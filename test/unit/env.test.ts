import { describe, expect, it } from "vitest";
import { readEnv } from "../../src/config/env.js";

describe("REPLY_TO", () => {
  it("accepts an email address", () => {
    const result = readEnv({ REPLY_TO: "help@shop.example" });
    expect(result.ok && result.env.REPLY_TO).toBe("help@shop.example");
  });

  it.each([{}, { REPLY_TO: "" }])("is unset when absent or empty (%j)", (source) => {
    const result = readEnv(source);
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.env.REPLY_TO).toBeUndefined();
  });

  it.each(["help desk", "help@", '"Corner Shop" <help@shop.example>'])(
    "refuses %j, naming the variable and what is expected",
    (value) => {
      expect(readEnv({ REPLY_TO: value })).toEqual({
        ok: false,
        problems: ["REPLY_TO: expected an email address such as help@shop.example"],
      });
    },
  );
});
