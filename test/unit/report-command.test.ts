import { describe, expect, it } from "vitest";
import { runReport } from "../../src/cli/report-command.js";
import { captureIo } from "../support/capture-io.js";

/** `followups report`'s dates, refused before Redis is asked anything. */
describe("followups report --since", () => {
  it("without --until says that --until defaults to today, and what to give instead", async () => {
    // Any day from today on: today's date is matched as a date, so midnight cannot flake it.
    await expect(
      runReport({ config: "config", since: "2999-01-01", format: "text" }, captureIo()),
    ).rejects.toMatchObject({
      code: 2,
      message: expect.stringMatching(
        /^--since must be before --until, which is \d{4}-\d{2}-\d{2} when not given \(today: the period ends the day before --until\); to include 2999-01-01, give --until 2999-01-02$/,
      ),
    });
  });

  it("after a --until given names no default", async () => {
    await expect(
      runReport(
        { config: "config", since: "2026-12-01", until: "2026-11-01", format: "text" },
        captureIo(),
      ),
    ).rejects.toMatchObject({ code: 2, message: "--since must be before --until" });
  });
});
