import { describe, expect, it } from "vitest";
import { runCustomer } from "../../src/cli/customer-command.js";
import { runErase } from "../../src/cli/erase-command.js";
import { captureIo } from "../support/capture-io.js";

/** `customer` and `erase` by address: a value plainly of the other kind is refused before Redis. */
describe("--email and --phone of customer and erase", () => {
  const commands = [
    ["customer", runCustomer],
    ["erase", runErase],
  ] as const;

  it.each(commands)(
    "%s --email without @ (a typo) is refused as not an email address",
    async (_, run) => {
      await expect(
        run(undefined, { config: "config", email: "ana.example.com" }, captureIo()),
      ).rejects.toMatchObject({
        code: 2,
        message:
          "--email: not an email address (expected name@domain); give a phone number with --phone",
      });
    },
  );

  it.each(commands)("%s --phone with an email address points to --email", async (_, run) => {
    await expect(
      run(undefined, { config: "config", phone: "ana@example.com" }, captureIo()),
    ).rejects.toMatchObject({
      code: 2,
      message: "--phone: that is an email address; give it with --email",
    });
  });
});
